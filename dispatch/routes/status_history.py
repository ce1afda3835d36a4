"""A unit's status history: every change (API, incident loop, the unit's own device) with who, from, to,
when and why."""

from __future__ import annotations

from datetime import datetime

import msgspec
from aiohttp import web

from dispatch.blocking import run_db
from dispatch.keys import ENGINE_KEY
from dispatch.openapi import DocumentedRoutes
from dispatch.routes.instants import Instant, optional_range
from dispatch.routes.params import Integer, encode
from dispatch.routes.units import UNIT_ID, UNITS
from store import registry

api = DocumentedRoutes("units")

FROM = Instant("from", "changes at or after this instant", required=False)
TO = Instant("to", "changes before this instant", required=False)
LIMIT = Integer("limit", "most changes to return, oldest first", default=1000, minimum=1, maximum=10_000)


class StatusChangeOut(msgspec.Struct):
    """One change of a unit's status: `actor` is who (`token:…`, `device:…`, the incident loop), `why`
    what they gave as the reason."""

    at: datetime
    from_status: str
    to_status: str
    actor: str
    why: str


class StatusHistory(msgspec.Struct):
    """A unit's status changes, oldest first."""

    unit_id: str
    changes: list[StatusChangeOut]


@api.route(
    "GET",
    "/v1/units/{id}/status-history",
    role="viewer",
    params=[UNIT_ID, FROM, TO, LIMIT],
    response=StatusHistory,
)
async def status_history(request: web.Request) -> web.Response:
    """A unit's status changes: who, from, to, when, why

    Every change of the unit's status in [from, to) (either absent: unbounded), oldest first."""
    unit_id = UNIT_ID.get(request)
    start, end = optional_range(request, FROM, TO)
    await UNITS.find(request, unit_id)
    found = await run_db(
        registry.status_history,
        request.app[ENGINE_KEY],
        unit_id,
        start=start,
        end=end,
        limit=LIMIT.get(request),
    )
    changes = [StatusChangeOut(c.at, c.from_status, c.to_status, c.actor, c.why) for c in found]
    return encode(StatusHistory(unit_id, changes))
