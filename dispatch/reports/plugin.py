"""The monthly report as an `ApiPlugin` for `dispatch.app.init_app`: its routes, the rules it follows on
the app, and the automatic run at the start of each month while the app runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from dispatch.keys import CLOCK_KEY, ENGINE_KEY
from dispatch.leading import Leading, when_leading
from dispatch.openapi import RoutesPlugin
from dispatch.reports.assemble import ReportRules
from dispatch.reports.routes import RULES_KEY, api
from dispatch.reports.service import run_schedule


class ReportsPlugin(RoutesPlugin):
    """Mount with `init_app(ctx, plugins=[ReportsPlugin(rules)])`; `scheduled`: run the automatic monthly
    report in this process (the `all` role, or the leading one of the `api` replicas: `leadership`)."""

    def __init__(
        self, rules: ReportRules, *, scheduled: bool = True, leadership: Leading | None = None
    ) -> None:
        super().__init__(api)
        self.rules = rules
        self.scheduled = scheduled
        self._leadership = leadership  # replicas: only the leader runs the schedule

    def setup(self, app: web.Application) -> None:
        """Put the rules on the app and run the schedule while the app runs."""
        app[RULES_KEY] = self.rules
        if self.scheduled:
            app.cleanup_ctx.append(self._lifecycle)

    async def _lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        work = self._scheduled(app)
        task = asyncio.get_running_loop().create_task(work, name="monthly-report")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _scheduled(self, app: web.Application) -> None:
        await when_leading(self._leadership)
        await run_schedule(app[ENGINE_KEY], app[CLOCK_KEY], self.rules)
