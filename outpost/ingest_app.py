"""The `ingest` role's HTTP server: the phones' endpoints (/ingest/…), /healthz, /readyz, and /metrics
behind an API token. It borrows the API's token check and problem responses, so it is assembled here, where
both sides may be imported, rather than in either of them."""

from __future__ import annotations

import contextlib
import ssl

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine

from dispatch.auth import TokenAuthority, auth_middleware
from dispatch.clock import Clock
from dispatch.problems import problems_middleware
from dispatch.routes.health import Gates, readiness
from dispatch.settings import ApiSettings
from ingest import http as ingest_http
from ingest.pipeline import Pipeline


async def serve_ingest_http(
    stack: contextlib.AsyncExitStack,
    api: ApiSettings,
    pipeline: Pipeline,
    engine: Engine,
    clock: Clock,
    gates: Gates | None = None,
    tls: ssl.SSLContext | None = None,
) -> str:
    """Start the server on the API's address; it stops with `stack`. Returns its URL. `/readyz` waits for
    the database and `gates` (the ingest subscription). `tls`: serve HTTPS with it (outpost.tls_checks)."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "role": "ingest"})

    async def readyz(_: web.Request) -> web.Response:
        return await readiness(engine, True, gates)  # no live picture in this role

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    authority = TokenAuthority(engine, clock, api.token_cache_s)
    app = web.Application(
        client_max_size=pipeline.settings.max_payload_bytes + 1024,
        middlewares=[problems_middleware, auth_middleware(authority)],
    )
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.add_routes(ingest_http.routes(pipeline))
    return await serve_app(stack, app, api, tls)


async def serve_app(
    stack: contextlib.AsyncExitStack, app: web.Application, api: ApiSettings, tls: ssl.SSLContext | None
) -> str:
    """Serve `app` on the API's address (HTTPS with `tls`) until `stack` closes; returns its URL."""
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=api.http_header_timeout_s)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    await web.TCPSite(runner, api.http_host, api.http_port, ssl_context=tls).start()
    return site_url(runner, api.http_host, tls=tls is not None)


def site_url(runner: web.AppRunner, host: str, *, tls: bool = False) -> str:
    """The URL a started runner answers on (a wildcard host shown as loopback; https:// with `tls`)."""
    port = next(iter(runner.addresses))[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"{'https' if tls else 'http'}://{shown}:{port}"
