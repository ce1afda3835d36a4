"""The incident API as an `ApiPlugin` for `dispatch.app.init_app`: routes, OpenAPI, and the loop's life.

`setup(app)` puts the service on the app and ties its start and stop to the app (cleanup_ctx): stored
offer timeouts and SLA deadlines are re-armed on start, the fleet's moves are followed for arrival
detection, and old Idempotency-Key records are purged periodically.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from dispatch.blocking import run_db
from dispatch.incidents.amend_routes import api  # every incident route (routes.py's and amend's)
from dispatch.incidents.routes import INCIDENTS_KEY
from dispatch.incidents.service import IncidentService
from dispatch.openapi import RoutesPlugin

log = logging.getLogger(__name__)

# Purge old Idempotency-Key records at most this often (s).
_PURGE_EVERY_S = 3600.0


class IncidentsPlugin(RoutesPlugin):
    """Mount with `init_app(ctx, plugins=[IncidentsPlugin(service)])`."""

    def __init__(self, service: IncidentService) -> None:
        super().__init__(api)
        self.service = service

    def setup(self, app: web.Application) -> None:
        """Put the service on the app and run its timers while the app runs."""
        app[INCIDENTS_KEY] = self.service
        app.cleanup_ctx.append(self._lifecycle)

    async def _lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        await self.service.start()
        purger = asyncio.get_running_loop().create_task(self._purge_keys(), name="idempotency-purge")
        try:
            yield
        finally:
            purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purger
            await self.service.stop()

    async def _purge_keys(self) -> None:
        deps = self.service.deps
        ttl_s = self.service.settings.idempotency_ttl_s
        while True:
            await deps.clock.sleep(min(_PURGE_EVERY_S, ttl_s))
            try:
                dropped = await run_db(deps.store.purge_keys, before=deps.clock.now() - ttl_s)
            except Exception:
                log.warning("could not purge idempotency keys", exc_info=True)
                continue
            if dropped:
                log.info("purged %d idempotency keys older than %g s", dropped, ttl_s)
