"""HTTP handlers that correct an incident: its priority, and merging a duplicate report into another.

Both are dispatchers' POSTs added to the incident API's routes (`routes.api`, re-exported here as `api`:
the plugin mounts this module's, so that these are registered), made once per Idempotency-Key.
"""

from __future__ import annotations

from aiohttp import web

from dispatch.incidents import models as m
from dispatch.incidents.routes import INCIDENT_ID, actor_of, api, mutation, service_of, stepped_out
from dispatch.routes.params import read_body

__all__ = ["api", "change_priority", "merge"]


@mutation("/v1/incidents/{id}/priority", body=m.PriorityIn, errors=(409,))
async def change_priority(request: web.Request) -> web.Response:
    """Change the incident's priority

    Audited (`change_priority`, the state kept). A running SLA deadline moves to the new priority's
    target for the tier, counted from when the incident entered it (already past: it escalates at once);
    a priority in `OUTPOST_AUTO_DISPATCH_PRIORITIES` gets its open slots offered. 409 when the incident
    is already of that priority or no longer active."""
    body = await read_body(request, m.PriorityIn)
    stepped = await service_of(request).change_priority(
        INCIDENT_ID.get(request), body.priority, actor=actor_of(request), reason=body.reason
    )
    return stepped_out(stepped)


@mutation("/v1/incidents/{id}/merge", body=m.MergeIn, errors=(409,))
async def merge(request: web.Request) -> web.Response:
    """Merge a duplicate report into another incident

    The incident of the path is a duplicate of `into`: it ends as `merged` (offers withdrawn, units
    released), `into` records that it absorbed it, and its record lists the duplicate's call, reporter
    and times among its `calls`. Both are audited. 409 with the reason when merging into itself, into a
    finished incident (closed, cancelled, transferred or merged), or a duplicate already merged; 400
    naming `body.into` when it names no incident."""
    body = await read_body(request, m.MergeIn)
    stepped = await service_of(request).merge(
        INCIDENT_ID.get(request), into=body.into, actor=actor_of(request), reason=body.reason
    )
    return stepped_out(stepped)
