"""Operations endpoints: liveness, readiness, Prometheus metrics, the OpenAPI document.

`/healthz` is liveness and the live index (200 once it has been rebuilt). `/readyz` (and `/healthz?ready=1`)
is readiness: 200 only once the database answers, every gate the composition root registered is open (the
ingest subscription acknowledged by the broker, so fixes published from then on are kept for us) and the live
picture is loaded; 503 naming what is still pending before. Health checks and fleets wait on readiness.
"""

from __future__ import annotations

import asyncio

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine, text

from dispatch.blocking import run_db
from dispatch.keys import ENGINE_KEY, FLEET_KEY, OPENAPI_KEY
from dispatch.openapi import DocumentedRoutes
from dispatch.problems import Unavailable
from dispatch.routes.models import Health
from dispatch.routes.params import QueryText, encode

api = DocumentedRoutes("operations")

# A database that does not answer a SELECT 1 in this long is not ready (a health check has its own timeout).
_DATABASE_TIMEOUT_S = 2.0
_READY = QueryText("ready", "`1`: answer readiness (as /readyz) instead of liveness", pattern="^(?:0|1)$")


class Gates:
    """What readiness waits for besides the database and the live picture: named gates, each opened once."""

    def __init__(self) -> None:
        self._open: dict[str, bool] = {}
        self._all_open = asyncio.Event()
        self._all_open.set()

    def require(self, name: str) -> None:
        """Readiness waits for `name` too."""
        if not self._open.get(name, False):
            self._open[name] = False
            self._all_open.clear()

    def open(self, name: str) -> None:
        """`name` is done (e.g. "ingest_subscribed")."""
        self._open[name] = True
        if not self.pending():
            self._all_open.set()

    def pending(self) -> list[str]:
        """The gates still closed, in the order they were required."""
        return [name for name, done in self._open.items() if not done]

    async def all_open(self) -> None:
        """Return once no gate is closed."""
        await self._all_open.wait()


GATES_KEY = web.AppKey("readiness_gates", Gates)


class Readiness(msgspec.Struct):
    """Readiness: what is done and what is still pending."""

    status: str  # "ready" or "starting"
    database: bool
    live_picture: bool
    pending: list[str]  # what is not done yet: "database", "live_picture", and the root's gates


@api.route("GET", "/healthz", role=None, params=[_READY], response=(Health, Readiness), errors=[503])
async def healthz(request: web.Request) -> web.Response:
    """Liveness and the live index

    200 once the live index has been rebuilt and the API serves; 503 before. With `?ready=1`, readiness
    as /readyz answers it. No token needed."""
    if _READY.get(request) == "1":
        return await readyz(request)
    fleet = request.app[FLEET_KEY]
    status = 200 if fleet.ready else 503
    return encode(
        Health(status="ok" if fleet.ready else "starting", units_indexed=len(fleet.index)), status=status
    )


@api.route("GET", "/readyz", role=None, response=Readiness, errors=[503])
async def readyz(request: web.Request) -> web.Response:
    """Readiness

    200 only once the database answers, the ingest subscription is acknowledged by the broker (the session
    that keeps fixes published from now on exists) and the live picture is loaded; 503 with what is
    pending before. Wait on this, not on /healthz, before devices start publishing. No token needed."""
    return await readiness(request.app[ENGINE_KEY], request.app[FLEET_KEY].ready, request.app.get(GATES_KEY))


async def readiness(engine: Engine, live_picture: bool, gates: Gates | None) -> web.Response:
    """The readiness answer: 200 when the database answers, the live picture is loaded and every gate is
    open; 503 with what is pending otherwise (also served by the `ingest` role, which has no live picture)."""
    database = await _database_answers(engine)
    done = (("database", database), ("live_picture", live_picture))
    pending = [name for name, ok in done if not ok] + (gates.pending() if gates is not None else [])
    body = Readiness("starting" if pending else "ready", database, live_picture, pending)
    return encode(body, status=503 if pending else 200)


async def _database_answers(engine: Engine) -> bool:
    try:
        await asyncio.wait_for(run_db(_select_one, engine), _DATABASE_TIMEOUT_S)
    except (Unavailable, TimeoutError):
        return False
    return True


def _select_one(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


@api.route("GET", "/metrics", role="viewer", response={"type": "string"}, media_type="text/plain")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus metrics

    Metrics in the Prometheus text format."""
    response = web.Response(body=generate_latest())
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


@api.route("GET", "/openapi.json", role=None, response={"type": "object"})
async def openapi(request: web.Request) -> web.Response:
    """This API's OpenAPI 3.1 document (open: browsers and client generators read it tokenless)

    The OpenAPI document, generated from the route declarations."""
    return encode(request.app[OPENAPI_KEY])
