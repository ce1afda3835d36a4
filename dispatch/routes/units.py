"""Units: registry CRUD, status, device bindings, live position and units in view (nearest: `nearest.py`)."""

from __future__ import annotations

from datetime import UTC

from aiohttp import web

from dispatch.auth import principal
from dispatch.blocking import run_db
from dispatch.fleet import Fleet
from dispatch.keys import AUDIT_KEY, CLOCK_KEY, CONTEXT_KEY, ENGINE_KEY, FLEET_KEY
from dispatch.live import UnitState
from dispatch.openapi import DocumentedRoutes
from dispatch.problems import Conflict, InvalidParameter, NotFound
from dispatch.routes import present
from dispatch.routes.models import (
    BindingIn,
    BindingList,
    BindingOut,
    StatusIn,
    StatusOut,
    UnitDetail,
    UnitDevice,
    UnitIn,
    UnitList,
    UnitListItem,
    UnitOut,
    UnitPatch,
)
from dispatch.routes.params import Bbox, Integer, PathId, Words, encode, read_body
from dispatch.routes.resources import After, Resource, add_edit_routes, clock_now
from schemas.vocabulary import UNIT_KINDS, UNIT_STATUSES
from store import registry

UNIT_ID = PathId("id", "the unit's id")
DEVICE_ID = PathId("device_id", "the device's id")
api = DocumentedRoutes("units", path_params=[UNIT_ID, DEVICE_ID])
BBOX = Bbox()
LIST_KIND = Words("kind", "only units of these kinds", UNIT_KINDS)
LIST_STATUS = Words("status", "only units in these statuses", UNIT_STATUSES)
LIMIT = Integer("limit", "page size of the registry listing", default=500, minimum=1, maximum=5000)
UNITS = Resource("unit", UNIT_ID, registry.UNIT_QUERIES, Fleet.track_unit, present.unit_out)


# ---- registry ------------------------------------------------------------------------------------------


add_edit_routes(api, UNITS, (UnitIn, UnitPatch, UnitOut), kept="their history stays meaningful")


def _item(request: web.Request, unit_id: str, record: registry.Unit | None) -> UnitListItem:
    fleet = request.app[FLEET_KEY]
    pos = present.live_position(fleet, unit_id, request.app[CLOCK_KEY].now())
    # Units in view are answered from the picture, without reading the registry.
    source: registry.Unit | UnitState | None = record or fleet.unit(unit_id)
    assert source is not None
    skills = list(record.skills) if record is not None else sorted(source.skills)
    return UnitListItem(
        id=unit_id,
        name=source.name,
        kind=source.kind,
        skills=skills,
        status=source.status,
        enabled=source.enabled,
        position=pos,
    )


@api.route(
    "GET",
    "/v1/units",
    role="viewer",
    params=[BBOX, LIST_KIND, LIST_STATUS, After("units"), LIMIT],
    response=UnitList,
)
async def list_units(request: web.Request) -> web.Response:
    """List units, or the units in view (bbox)

    Without `bbox`: the registry, by id, paged with `after`/`limit`, each with its live position. With
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
        return encode(UnitList(units=items))
    page, next_after = await UNITS.page(request, LIMIT.get(request), kinds=kinds, statuses=statuses)
    items = [_item(request, r.id, r) for r in page]
    if any(i.position is not None for i in items):
        app[AUDIT_KEY].record(
            principal(request).actor,
            "list_units",
            "units:" + (page[0].id if page else ""),
            {"units_with_position": sum(1 for i in items if i.position is not None)},
        )
    return encode(UnitList(units=items, next_after=next_after))


@api.route("GET", "/v1/units/{id}", role="viewer", response=UnitDetail)
async def get_unit(request: web.Request) -> web.Response:
    """A unit: record, live position, devices and their last fixes

    The unit's registry record, live (fused) position, the devices bound to it now with each one's last
    fix, and whether its devices are separated. Written to the audit log."""
    app = request.app
    unit_id = UNIT_ID.get(request)
    record = await UNITS.find(request, unit_id)
    bindings = await run_db(registry.bindings_of_unit, app[ENGINE_KEY], unit_id)
    now = clock_now(request)
    fleet = app[FLEET_KEY]
    devices = []
    for b in (b for b in bindings if b.active_at(now)):
        state = fleet.device(b.device_id)
        if state is None:
            stored = await run_db(registry.get_device, app[ENGINE_KEY], b.device_id)
            kind, priority = (stored.kind, stored.priority) if stored else ("other", 0)
            devices.append(
                UnitDevice(id=b.device_id, kind=kind, priority=priority, last_fix=None, last_usable_fix=None)
            )
            continue
        devices.append(
            UnitDevice(
                id=state.id,
                kind=state.kind,
                priority=state.priority,
                last_fix=present.fix_out(state.last_fix),
                last_usable_fix=present.fix_out(state.usable_fix),
            )
        )
    pos = present.live_position(fleet, unit_id, now.timestamp())
    unit_state = fleet.unit(unit_id)
    app[AUDIT_KEY].record(principal(request).actor, "read_unit", unit_id, None)
    return encode(
        UnitDetail(
            unit=present.unit_out(record),
            position=pos,
            devices=devices,
            separated=bool(unit_state and unit_state.separated),
        )
    )


# ---- status --------------------------------------------------------------------------------------------


@api.route(
    "POST", "/v1/units/{id}/status", role="dispatcher", body=StatusIn, response=StatusOut, errors=[409]
)
async def set_status(request: web.Request) -> web.Response:
    """Change a unit's status

    Set the status. With `expected`, the change happens only if the current status is one of them
    (atomically; 409 with the current status otherwise). off_duty removes the unit from the live index."""
    body = await read_body(request, StatusIn)
    unit_id = UNIT_ID.get(request)
    fleet, actor = request.app[FLEET_KEY], principal(request).actor
    if body.expected is None:
        await fleet.set_status(unit_id, body.status, actor=actor, why=body.why)
    elif not await fleet.compare_and_set_status(
        unit_id, body.expected, body.status, actor=actor, why=body.why
    ):
        record = await UNITS.find(request, unit_id)
        raise Conflict(
            f"unit {unit_id} is {record.status}, not one of {', '.join(body.expected)}",
            current_state={"status": record.status},
        )
    return encode(StatusOut(id=unit_id, status=body.status))


# ---- bindings ------------------------------------------------------------------------------------------


@api.route("GET", "/v1/units/{id}/devices", role="viewer", response=BindingList)
async def list_bindings(request: web.Request) -> web.Response:
    """A unit's device bindings

    Every binding of the unit, past, current and future, oldest first."""
    unit_id = UNIT_ID.get(request)
    await UNITS.find(request, unit_id)
    found = await run_db(registry.bindings_of_unit, request.app[ENGINE_KEY], unit_id)
    return encode(BindingList(bindings=[present.binding_out(b) for b in found]))


@api.create("/v1/units/{id}/devices", role="dispatcher", body=BindingIn, response=BindingOut)
async def bind_device(request: web.Request) -> web.Response:
    """Bind a device to the unit for a shift

    The device belongs to the unit from valid_from (default now) until valid_to (default open-ended).
    A device can belong to one unit at a time: an overlapping binding is a 409."""
    body = await read_body(request, BindingIn)
    app, unit_id = request.app, UNIT_ID.get(request)
    valid_from = body.valid_from or clock_now(request)
    for name, value in (("body.valid_from", valid_from), ("body.valid_to", body.valid_to)):
        if value is not None and value.tzinfo is None:
            raise InvalidParameter(name, "needs a time zone (e.g. 2024-05-30T17:00:00Z)")
    if body.valid_to is not None and body.valid_to <= valid_from:
        raise InvalidParameter("body.valid_to", "must be after valid_from")
    await UNITS.find(request, unit_id)
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
    await app[CONTEXT_KEY].devices_changed()  # ingest stamps the device's fixes with its new unit at once
    return encode(present.binding_out(binding), status=201)


@api.route("DELETE", "/v1/units/{id}/devices/{device_id}", role="dispatcher", response=BindingList)
async def unbind_device(request: web.Request) -> web.Response:
    """Unbind a device from the unit

    Ends the device's current binding to the unit now and drops future ones; answers the bindings left."""
    app, unit_id, device_id = request.app, UNIT_ID.get(request), DEVICE_ID.get(request)
    changed = await run_db(
        registry.end_bindings, app[ENGINE_KEY], unit_id=unit_id, device_id=device_id, now=clock_now(request)
    )
    if not changed:
        raise NotFound(f"device {device_id} is not bound to unit {unit_id} now or later")
    app[FLEET_KEY].unbind(unit_id, device_id)
    await app[CONTEXT_KEY].devices_changed()
    found = await run_db(registry.bindings_of_unit, app[ENGINE_KEY], unit_id)
    return encode(BindingList(bindings=[present.binding_out(b) for b in found]))
