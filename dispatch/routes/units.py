"""Units: registry CRUD, status, device bindings, live position, units in view, and nearest."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from dispatch.auth import principal
from dispatch.blocking import run_db
from dispatch.keys import AUDIT_KEY, CLOCK_KEY, ENGINE_KEY, FLEET_KEY, SETTINGS_KEY
from dispatch.openapi import DocumentedRoutes
from dispatch.problems import Conflict, InvalidParameter, NotFound
from dispatch.routes import models, present
from dispatch.routes.params import Bbox, Integer, Number, PathId, Words, encode, read_body
from schemas.vocabulary import UNIT_KINDS, UNIT_STATUSES
from store import registry

api = DocumentedRoutes("units")

UNIT_ID = PathId("id", "the unit's id")
DEVICE_ID = PathId("device_id", "the device's id")
LON = Number("lon", "longitude of the incident (degrees)", minimum=-180, maximum=180, required=True)
LAT = Number("lat", "latitude of the incident (degrees)", minimum=-90, maximum=90, required=True)
K = Integer("k", "how many units to return", default=5, minimum=1, maximum=1000)
STATUS = Words(
    "status",
    "allowed statuses (default: available; `any`: every status)",
    UNIT_STATUSES,
    extra_choices=("any",),
)
KIND = Words("kind", "allowed kinds (default: any kind)", UNIT_KINDS)
SKILL = Words("skill", "skills the unit must all have")
MAX_AGE = Number(
    "max_age_s", "units whose fix is older are excluded as stale (s; default from settings)", minimum=0
)
RADIUS = Number("radius_m", "only units within this distance (m)", positive=True)
MAX_ACCURACY = Number("max_accuracy_m", "only units whose fix is at least this accurate (m)", positive=True)
BBOX = Bbox()
LIST_KIND = Words("kind", "only units of these kinds", UNIT_KINDS)
LIST_STATUS = Words("status", "only units in these statuses", UNIT_STATUSES)
LIMIT = Integer("limit", "page size of the registry listing", default=500, minimum=1, maximum=5000)


class _After:
    """`after`: the last id of the previous page."""

    def openapi(self) -> dict[str, object]:
        return {
            "name": "after",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "list units with ids after this one (the previous page's next_after)",
        }


def _now(request: web.Request) -> datetime:
    return datetime.fromtimestamp(request.app[CLOCK_KEY].now(), UTC)


async def _unit_or_404(request: web.Request, unit_id: str) -> registry.Unit:
    record = await run_db(registry.get_unit, request.app[ENGINE_KEY], unit_id)
    if record is None:
        raise NotFound(f"no unit {unit_id}")
    return record


# ---- nearest (registered before /v1/units/{id}, which would otherwise match it) -------------------------


@api.route(
    "GET",
    "/v1/units/nearest",
    summary="The nearest matching units, with why and what was left out",
    role="viewer",
    params=[LON, LAT, K, STATUS, KIND, SKILL, MAX_AGE, RADIUS, MAX_ACCURACY],
    response=models.NearestOut,
)
async def nearest(request: web.Request) -> web.Response:
    """The k nearest units by great-circle distance (exact), nearest first, filtered by status (default
    available), kind, skills, fix age, radius and accuracy. `excluded` counts the nearer units left out, by
    reason (`status:<s>`, `kind`, `skills`, `stale`, `accuracy`; `out_of_radius` counts the matching units
    beyond the radius that would have filled the places left). ETAs are straight-line estimates. The read
    is written to the audit log."""
    app = request.app
    settings = app[SETTINGS_KEY]
    lon, lat, k = LON.need(request), LAT.need(request), K.get(request)
    if k > settings.nearest_max_k:
        raise InvalidParameter("k", f"must be at most {settings.nearest_max_k}, got {k}")
    statuses_asked = STATUS.get(request) or ("available",)
    statuses = None if "any" in statuses_asked else statuses_asked
    kinds, skills = KIND.get(request), SKILL.get(request) or ()
    max_age_s = MAX_AGE.get(request, settings.max_fix_age_s)
    radius_m, max_accuracy_m = RADIUS.get(request), MAX_ACCURACY.get(request)
    result = app[FLEET_KEY].nearest(
        lon,
        lat,
        k,
        statuses=statuses,
        kinds=kinds,
        skills=skills,
        max_age_s=max_age_s,
        radius_m=radius_m,
        max_accuracy_m=max_accuracy_m,
    )
    now_s = app[CLOCK_KEY].now()
    units = [
        present.nearest_unit(n, rank, now_s, settings, skills)
        for rank, n in enumerate(result.neighbors, start=1)
    ]
    app[AUDIT_KEY].record(
        principal(request).actor,
        "nearest",
        f"point:{lon:.6f},{lat:.6f}",
        {"k": k, "units": [u.id for u in units]},
    )
    query = models.NearestQuery(
        lon=lon,
        lat=lat,
        k=k,
        status=list(statuses) if statuses else None,
        kind=list(kinds) if kinds else None,
        skill=list(skills),
        max_age_s=max_age_s,
        radius_m=radius_m,
        max_accuracy_m=max_accuracy_m,
    )
    return encode(models.NearestOut(units=units, excluded=dict(result.excluded), query=query))


# ---- registry ------------------------------------------------------------------------------------------


@api.route(
    "POST",
    "/v1/units",
    summary="Create a unit",
    role="admin",
    body=models.UnitIn,
    response=models.UnitOut,
    status=201,
    errors=[409],
)
async def create_unit(request: web.Request) -> web.Response:
    """Register an officer, auxiliary or vehicle."""
    body = await read_body(request, models.UnitIn)
    try:
        record = await run_db(
            registry.insert_unit,
            request.app[ENGINE_KEY],
            id=body.id,
            name=body.name,
            kind=body.kind,
            skills=body.skills,
            status=body.status,
            enabled=body.enabled,
            now=_now(request),
        )
    except registry.Duplicate as exc:
        raise Conflict(str(exc), current_state={"id": body.id}) from None
    request.app[FLEET_KEY].track_unit(record)
    return encode(present.unit_out(record), status=201)


def _item(request: web.Request, unit_id: str, record: registry.Unit | None) -> models.UnitListItem:
    fleet = request.app[FLEET_KEY]
    position = fleet.position(unit_id)
    now_s = request.app[CLOCK_KEY].now()
    pos = present.position_out(position, now_s, in_index=fleet.indexed(unit_id)) if position else None
    if record is not None:
        return models.UnitListItem(
            id=record.id,
            name=record.name,
            kind=record.kind,
            skills=list(record.skills),
            status=record.status,
            enabled=record.enabled,
            position=pos,
        )
    state = fleet.unit(unit_id)
    assert state is not None
    return models.UnitListItem(
        id=unit_id,
        name=state.name,
        kind=state.kind,
        skills=sorted(state.skills),
        status=state.status,
        enabled=state.enabled,
        position=pos,
    )


@api.route(
    "GET",
    "/v1/units",
    summary="List units, or the units in view (bbox)",
    role="viewer",
    params=[BBOX, LIST_KIND, LIST_STATUS, _After(), LIMIT],
    response=models.UnitList,
)
async def list_units(request: web.Request) -> web.Response:
    """Without `bbox`: the registry, by id, paged with `after`/`limit`, each with its live position. With
    `bbox`: the on-duty units whose live position is inside the box (a map view); that read of locations
    is written to the audit log."""
    app = request.app
    kinds, statuses = LIST_KIND.get(request), LIST_STATUS.get(request)
    box = BBOX.get(request)
    if box is not None:
        found = app[FLEET_KEY].in_bbox(*box)
        items = [
            _item(request, p.unit_id, None)
            for p in sorted(found, key=lambda p: p.unit_id)
            if (kinds is None or p.kind in kinds) and (statuses is None or p.status in statuses)
        ]
        app[AUDIT_KEY].record(
            principal(request).actor,
            "units_in_bbox",
            "bbox:" + ",".join(f"{v:.6f}" for v in box),
            {"units": len(items)},
        )
        return encode(models.UnitList(units=items))
    limit = LIMIT.get(request)
    records = await run_db(
        registry.list_units,
        app[ENGINE_KEY],
        kinds=kinds,
        statuses=statuses,
        after_id=request.query.get("after"),
        limit=limit + 1,
    )
    page, more = records[:limit], len(records) > limit
    items = [_item(request, r.id, r) for r in page]
    if any(i.position is not None for i in items):
        app[AUDIT_KEY].record(
            principal(request).actor,
            "list_units",
            "units:" + (page[0].id if page else ""),
            {"units_with_position": sum(1 for i in items if i.position is not None)},
        )
    return encode(models.UnitList(units=items, next_after=page[-1].id if more and page else None))


@api.route(
    "GET",
    "/v1/units/{id}",
    summary="A unit: record, live position, devices and their last fixes",
    role="viewer",
    params=[UNIT_ID],
    response=models.UnitDetail,
    errors=[404],
)
async def get_unit(request: web.Request) -> web.Response:
    """The unit's registry record, live (fused) position, the devices bound to it now with each one's last
    fix, and whether its devices are separated. Written to the audit log."""
    app = request.app
    unit_id = UNIT_ID.get(request)
    record = await _unit_or_404(request, unit_id)
    bindings = await run_db(registry.bindings_of_unit, app[ENGINE_KEY], unit_id)
    now = _now(request)
    fleet = app[FLEET_KEY]
    devices = []
    for b in (b for b in bindings if b.active_at(now)):
        state = fleet.device(b.device_id)
        if state is None:
            stored = await run_db(registry.get_device, app[ENGINE_KEY], b.device_id)
            kind, priority = (stored.kind, stored.priority) if stored else ("other", 0)
            devices.append(
                models.UnitDevice(
                    id=b.device_id, kind=kind, priority=priority, last_fix=None, last_usable_fix=None
                )
            )
            continue
        devices.append(
            models.UnitDevice(
                id=state.id,
                kind=state.kind,
                priority=state.priority,
                last_fix=present.fix_out(state.last_fix),
                last_usable_fix=present.fix_out(state.usable_fix),
            )
        )
    position = fleet.position(unit_id)
    pos = (
        present.position_out(position, now.timestamp(), in_index=fleet.indexed(unit_id)) if position else None
    )
    unit_state = fleet.unit(unit_id)
    app[AUDIT_KEY].record(principal(request).actor, "read_unit", unit_id, None)
    return encode(
        models.UnitDetail(
            unit=present.unit_out(record),
            position=pos,
            devices=devices,
            separated=bool(unit_state and unit_state.separated),
        )
    )


@api.route(
    "PATCH",
    "/v1/units/{id}",
    summary="Change a unit (enabled=false disables it)",
    role="admin",
    params=[UNIT_ID],
    body=models.UnitPatch,
    response=models.UnitOut,
    errors=[404],
)
async def patch_unit(request: web.Request) -> web.Response:
    """Change name, kind, skills or enabled. A disabled unit leaves the live index."""
    body = await read_body(request, models.UnitPatch)
    return await _change_unit(request, **models.set_fields(body))


@api.route(
    "DELETE",
    "/v1/units/{id}",
    summary="Disable a unit",
    role="admin",
    params=[UNIT_ID],
    response=models.UnitOut,
    errors=[404],
)
async def disable_unit(request: web.Request) -> web.Response:
    """Units are never deleted (their history stays meaningful): this disables the unit."""
    return await _change_unit(request, enabled=False)


async def _change_unit(request: web.Request, **changes: Any) -> web.Response:
    """Store the changes, let the live picture follow, answer with the record."""
    unit_id = UNIT_ID.get(request)
    record = await run_db(registry.update_unit, request.app[ENGINE_KEY], unit_id, **changes)
    if record is None:
        raise NotFound(f"no unit {unit_id}")
    request.app[FLEET_KEY].track_unit(record)
    return encode(present.unit_out(record))


# ---- status --------------------------------------------------------------------------------------------


@api.route(
    "POST",
    "/v1/units/{id}/status",
    summary="Change a unit's status",
    role="dispatcher",
    params=[UNIT_ID],
    body=models.StatusIn,
    response=models.StatusOut,
    errors=[404, 409],
)
async def set_status(request: web.Request) -> web.Response:
    """Set the status. With `expected`, the change happens only if the current status is one of them
    (atomically; 409 with the current status otherwise). off_duty removes the unit from the live index."""
    body = await read_body(request, models.StatusIn)
    unit_id = UNIT_ID.get(request)
    fleet, actor = request.app[FLEET_KEY], principal(request).actor
    if body.expected is None:
        await fleet.set_status(unit_id, body.status, actor=actor)
    elif not await fleet.compare_and_set_status(unit_id, body.expected, body.status, actor=actor):
        record = await _unit_or_404(request, unit_id)
        raise Conflict(
            f"unit {unit_id} is {record.status}, not one of {', '.join(body.expected)}",
            current_state={"status": record.status},
        )
    return encode(models.StatusOut(id=unit_id, status=body.status))


# ---- bindings ------------------------------------------------------------------------------------------


@api.route(
    "GET",
    "/v1/units/{id}/devices",
    summary="A unit's device bindings",
    role="viewer",
    params=[UNIT_ID],
    response=models.BindingList,
    errors=[404],
)
async def list_bindings(request: web.Request) -> web.Response:
    """Every binding of the unit, past, current and future, oldest first."""
    unit_id = UNIT_ID.get(request)
    await _unit_or_404(request, unit_id)
    found = await run_db(registry.bindings_of_unit, request.app[ENGINE_KEY], unit_id)
    return encode(models.BindingList(bindings=[present.binding_out(b) for b in found]))


@api.route(
    "POST",
    "/v1/units/{id}/devices",
    summary="Bind a device to the unit for a shift",
    role="dispatcher",
    params=[UNIT_ID],
    body=models.BindingIn,
    response=models.BindingOut,
    status=201,
    errors=[404, 409],
)
async def bind_device(request: web.Request) -> web.Response:
    """The device belongs to the unit from valid_from (default now) until valid_to (default open-ended).
    A device can belong to one unit at a time: an overlapping binding is a 409."""
    body = await read_body(request, models.BindingIn)
    app, unit_id = request.app, UNIT_ID.get(request)
    valid_from = body.valid_from or _now(request)
    for name, value in (("body.valid_from", valid_from), ("body.valid_to", body.valid_to)):
        if value is not None and value.tzinfo is None:
            raise InvalidParameter(name, "needs a time zone (e.g. 2024-05-30T17:00:00Z)")
    if body.valid_to is not None and body.valid_to <= valid_from:
        raise InvalidParameter("body.valid_to", "must be after valid_from")
    await _unit_or_404(request, unit_id)
    if await run_db(registry.get_device, app[ENGINE_KEY], body.device_id) is None:
        raise NotFound(f"no device {body.device_id}")
    try:
        binding = await run_db(
            registry.insert_binding,
            app[ENGINE_KEY],
            device_id=body.device_id,
            unit_id=unit_id,
            valid_from=valid_from.astimezone(UTC),
            valid_to=body.valid_to.astimezone(UTC) if body.valid_to else None,
        )
    except registry.Overlap as exc:
        raise Conflict(str(exc), current_state=present.binding_out(exc.existing)) from None
    app[FLEET_KEY].bind(binding)
    return encode(present.binding_out(binding), status=201)


@api.route(
    "DELETE",
    "/v1/units/{id}/devices/{device_id}",
    summary="Unbind a device from the unit",
    role="dispatcher",
    params=[UNIT_ID, DEVICE_ID],
    response=models.BindingList,
    errors=[404],
)
async def unbind_device(request: web.Request) -> web.Response:
    """Ends the device's current binding to the unit now and drops future ones; answers the bindings left."""
    app, unit_id, device_id = request.app, UNIT_ID.get(request), DEVICE_ID.get(request)
    changed = await run_db(
        registry.end_bindings, app[ENGINE_KEY], unit_id=unit_id, device_id=device_id, now=_now(request)
    )
    if not changed:
        raise NotFound(f"device {device_id} is not bound to unit {unit_id} now or later")
    app[FLEET_KEY].unbind(unit_id, device_id)
    found = await run_db(registry.bindings_of_unit, app[ENGINE_KEY], unit_id)
    return encode(models.BindingList(bindings=[present.binding_out(b) for b in found]))
