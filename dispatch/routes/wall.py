"""The wall's figure the live picture cannot give: today's median response (report to first unit on scene).

On duty, available and open incidents by priority the page counts from what it already follows (the unit
list and the stream); this route adds the one number that needs history. "Today" is since the server's
local midnight.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime

import msgspec
from aiohttp import web
from sqlalchemy import Engine

from dispatch.blocking import run_db
from dispatch.keys import CLOCK_KEY, ENGINE_KEY
from dispatch.openapi import DocumentedRoutes
from dispatch.routes.params import encode
from store import incidents as db

api = DocumentedRoutes("map")
# Most incidents of one day read for the median; a day with more counts its latest ones.
DAY_LIMIT = 20_000


class ResponseToday(msgspec.Struct):
    """Incidents reported since local midnight that had a unit on scene, and their median response."""

    since: datetime
    responded: int
    median_response_s: float | None


def local_midnight(now_s: float) -> float:
    """The server's local midnight at or before `now_s` (epoch seconds)."""
    local = datetime.fromtimestamp(now_s, UTC).astimezone()
    return local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def _responses(engine: Engine, since_s: float) -> list[float]:
    with engine.connect() as conn:
        rows = db.list_incidents(conn, since=since_s, limit=DAY_LIMIT)
    return [r.on_scene_at - r.reported_at for r in rows if r.on_scene_at is not None]


@api.route("GET", "/v1/map/response-today", role="viewer", response=ResponseToday)
async def response_today(request: web.Request) -> web.Response:
    """Today's median response time, for the wall

    Median seconds from report to the first unit on scene, over today's incidents that had one."""
    since_s = local_midnight(request.app[CLOCK_KEY].now())
    found = await run_db(_responses, request.app[ENGINE_KEY], since_s)
    return encode(
        ResponseToday(
            since=datetime.fromtimestamp(since_s, UTC),
            responded=len(found),
            median_response_s=statistics.median(found) if found else None,
        )
    )
