"""The field desk as an `ApiPlugin` for `dispatch.app.init_app`: its routes and OpenAPI entries, the desk
on the app, and its timers while the app runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from dispatch.field import checkin_routes, command_routes, rollcall_routes
from dispatch.field.api import FIELD_KEY, api
from dispatch.field.desk import FieldDesk
from dispatch.leading import Leading, when_leading
from dispatch.openapi import RoutesPlugin

ROUTE_MODULES = (
    checkin_routes,
    command_routes,
    rollcall_routes,
)  # imported for the routes they register on `api`


class FieldPlugin(RoutesPlugin):
    """Mount with `init_app(ctx, plugins=[FieldPlugin(desk)])`. With `leadership` (the `api` role's
    replicas), the desk's timers run only once this replica leads."""

    def __init__(self, desk: FieldDesk, leadership: Leading | None = None) -> None:
        super().__init__(api)
        self.desk = desk
        self._leadership = leadership

    def setup(self, app: web.Application) -> None:
        """Put the desk on the app and run its timers while the app runs."""
        app[FIELD_KEY] = self.desk
        app.cleanup_ctx.append(self._lifecycle)

    async def _lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(self._run(), name="field-desk")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        await when_leading(self._leadership)
        await self.desk.run()
