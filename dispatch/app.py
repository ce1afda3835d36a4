"""The aiohttp application factory: middlewares, typed app keys, routes, background tasks, OpenAPI.

`init_app(ctx, plugins)` is the only way to build the API. The composition root makes the `ApiContext`
(engine, fleet, event bus, clock, settings) and passes plugins for routes owned elsewhere (incidents,
ingest's device endpoints under /ingest/). Background work (the audit's group commit, stream coalescing,
the fleet rebuild) is tied to the app's life through `cleanup_ctx`. Handlers stay thin: parse, call, encode.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import Histogram

from dispatch.audit import AuditLog, durable_answers, settle_before_headers
from dispatch.audit_journal import AuditJournal
from dispatch.auth import OPEN_PATHS, TokenAuthority, auth_middleware
from dispatch.collector import GcPolicy
from dispatch.keys import (
    AUDIT_KEY,
    BUS_KEY,
    CLOCK_KEY,
    CONTEXT_KEY,
    ENGINE_KEY,
    FLEET_KEY,
    OPENAPI_KEY,
    PATROL_KEY,
    SETTINGS_KEY,
    STREAM_SLOTS_KEY,
    TOKENS_KEY,
    ApiContext,
)
from dispatch.live import FleetEvent
from dispatch.openapi import build_document
from dispatch.patrol import Patrol
from dispatch.problems import problems_middleware
from dispatch.routes import CORE_ROUTES
from dispatch.routes.stream import stream_event
from dispatch.routes.web import PUBLIC_PATHS, PUBLIC_PREFIXES
from dispatch.screening import harden_headers, screening_middleware
from dispatch.stream_slots import StreamSlots

__all__ = ["API_VERSION", "ApiContext", "ApiPlugin", "init_app", "metrics_middleware"]

API_VERSION = "1.0.0"


class ApiPlugin(Protocol):
    """Routes owned by another package, documented in the same OpenAPI document."""

    @property
    def routes(self) -> web.RouteTableDef: ...

    @property
    def openapi_paths(self) -> Mapping[str, Any]: ...

    def setup(self, app: web.Application) -> None:
        """Attach what the routes need (app keys, cleanup_ctx background tasks)."""
        ...


REQUEST_SECONDS = Histogram(
    "outpost_http_request_seconds",
    "HTTP request handling time by route",
    ["method", "route", "status"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
)


@web.middleware
async def metrics_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Time every request by route template (not by raw path: ids would explode the label set)."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        REQUEST_SECONDS.labels(request.method, route, str(status)).observe(time.perf_counter() - started)


def init_app(ctx: ApiContext, plugins: Sequence[ApiPlugin] = ()) -> web.Application:
    """Build the API application around `ctx`, with `plugins` mounted and documented."""
    authority = TokenAuthority(ctx.engine, ctx.clock, ctx.settings.token_cache_s)
    auth = auth_middleware(
        authority, public_paths=(*OPEN_PATHS, *PUBLIC_PATHS), public_prefixes=("/ingest/", *PUBLIC_PREFIXES)
    )
    audit = AuditLog(
        ctx.engine,
        ctx.clock,
        AuditJournal(Path(ctx.settings.audit_journal_path)),
        required=ctx.settings.audit_required,
        window_s=ctx.settings.audit_commit_window_s,
        gather_s=ctx.settings.audit_commit_gather_s,
        retry_s=ctx.settings.audit_retry_s,
        max_pending=ctx.settings.audit_max_pending,
    )
    # Innermost: an answer waits for its audit records; a refusal (503) passes the problems middleware.
    durable = durable_answers(audit)
    middlewares = [problems_middleware, auth, screening_middleware, metrics_middleware, durable]
    app = web.Application(middlewares=middlewares)
    app[CONTEXT_KEY] = ctx
    app[ENGINE_KEY] = ctx.engine
    app[FLEET_KEY] = ctx.fleet
    app[BUS_KEY] = ctx.bus
    app[CLOCK_KEY] = ctx.clock
    app[SETTINGS_KEY] = ctx.settings
    app[TOKENS_KEY] = authority
    app[AUDIT_KEY] = audit
    app[PATROL_KEY] = Patrol(ctx.engine, ctx.fleet, ctx.bus, ctx.clock, ctx.settings)
    app[STREAM_SLOTS_KEY] = StreamSlots(ctx.settings.stream_max_per_token, ctx.settings.stream_max_total)
    sources = [*CORE_ROUTES, *plugins]
    for source in sources:
        app.add_routes(source.routes)
    app[OPENAPI_KEY] = build_document(sources, title="Outpost API", version=API_VERSION)
    app.on_response_prepare.append(harden_headers)
    app.on_response_prepare.append(settle_before_headers(audit))
    app.cleanup_ctx.append(_fleet_ready)
    app.cleanup_ctx.append(_gc_policy)
    app.cleanup_ctx.append(_audit)
    app.cleanup_ctx.append(_live_stream)
    app.cleanup_ctx.append(_patrol)
    for plugin in plugins:
        plugin.setup(app)
    return app


async def _fleet_ready(app: web.Application) -> AsyncIterator[None]:
    # The composition root may have rebuilt the fleet already (before ingest started feeding it).
    ctx = app[CONTEXT_KEY]
    if not ctx.fleet.ready:
        await ctx.fleet.rebuild(ctx.engine, ctx.settings.index_lookback_s)
    yield


async def _gc_policy(_: web.Application) -> AsyncIterator[None]:
    # Collector pauses bounded by what survived half a second, not by the picture (dispatch.collector).
    async with _running(GcPolicy.run(), "gc-policy"):
        yield


async def _audit(app: web.Application) -> AsyncIterator[None]:
    async for _ in app[AUDIT_KEY].lifecycle():
        yield


async def _live_stream(app: web.Application) -> AsyncIterator[None]:
    """Forward fleet events to the bus and run its coalescing flusher while the app runs."""
    fleet, bus = app[FLEET_KEY], app[BUS_KEY]

    def forward(event: FleetEvent) -> None:
        if event.type == "unit.moved" and not bus.wanted:
            return  # nobody watching (nor coming back): skip building the dict on the hot path
        payload, key = stream_event(event, fleet)
        bus.publish(payload, coalesce_key=key)

    unsubscribe = fleet.subscribe(forward)
    try:
        async with _running(bus.run(), "stream-coalesce"):
            yield
    finally:
        unsubscribe()


async def _patrol(app: web.Application) -> AsyncIterator[None]:
    """Load grids, geofences and assignments once the fleet is ready, then judge on the clock."""
    patrol = app[PATROL_KEY]
    patrol.health.follow()
    await patrol.reload()
    await patrol.check()
    try:
        async with _running(patrol.run(), "patrol"):
            yield
    finally:
        patrol.stop()


@contextlib.asynccontextmanager
async def _running(work: Coroutine[Any, Any, None], name: str) -> AsyncIterator[None]:
    """`work` as a task for the duration of the block, cancelled and awaited at its end."""
    task = asyncio.create_task(work, name=name)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
