"""Geofences over HTTP: every role reads them, admins draw, change and delete them.

A fence is a polygon (`geometry`, GeoJSON Polygon or MultiPolygon, lon/lat, checked as grids are) or a circle
(`circle`: centre lon/lat and `radius_m`, kept as its polygon on the ground). Units entering, leaving and
staying `dwell_s` inside one are events on the stream and on MQTT (`dispatch.patrol`); a change here
reaches the live watch at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from dispatch.auth import Role
from dispatch.blocking import run_db
from dispatch.keys import ENGINE_KEY, PATROL_KEY
from dispatch.openapi import DocumentedRoutes
from dispatch.problems import Conflict, InvalidParameter, NotFound
from dispatch.routes.grids import boundary_of
from dispatch.routes.params import PathId, encode, read_body
from dispatch.routes.resources import clock_now
from geo.fences import MAX_RADIUS_M, circle
from schemas.tables.fences import FENCE_ID_PATTERN
from schemas.values import AreaGeometry, Name
from store import fences

api = DocumentedRoutes("geofences")

FENCE_ID = PathId("id", "the geofence's id")
FenceId = Annotated[str, msgspec.Meta(pattern=FENCE_ID_PATTERN)]
DwellS = Annotated[float, msgspec.Meta(gt=0, le=86400)]
UNSET: Any = msgspec.UNSET
Handler = Callable[[web.Request], Awaitable[web.Response]]


class Circle(msgspec.Struct, forbid_unknown_fields=True):
    """A circle on the ground: its centre and radius."""

    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)]
    lat: Annotated[float, msgspec.Meta(ge=-85, le=85)]
    # At least a metre: below any fix's accuracy a circle fences nothing, and a radius near zero (5e-324)
    # is a disc shapely cannot draw.
    radius_m: Annotated[float, msgspec.Meta(ge=1, le=MAX_RADIUS_M)]


class FenceIn(msgspec.Struct, forbid_unknown_fields=True):
    """A new geofence: `geometry` (a polygon) or `circle`, not both. No `dwell_s`: OUTPOST_FENCE_DWELL_S."""

    id: FenceId
    name: Name
    geometry: AreaGeometry | None = None
    circle: Circle | None = None
    dwell_s: DwellS | None = None


class FencePatch(msgspec.Struct, forbid_unknown_fields=True):
    """Fields to change (absent: keep); a new `geometry` or `circle` replaces the area."""

    name: Name | msgspec.UnsetType = UNSET
    geometry: AreaGeometry | msgspec.UnsetType = UNSET
    circle: Circle | msgspec.UnsetType = UNSET
    dwell_s: DwellS | msgspec.UnsetType | None = UNSET


class FenceOut(msgspec.Struct):
    """A geofence: its area as GeoJSON (a circle's polygon), the circle asked for, its dwell."""

    id: str
    name: str
    kind: Literal["polygon", "circle"]
    geometry: dict[str, Any]
    circle: Circle | None
    dwell_s: float | None  # null: OUTPOST_FENCE_DWELL_S
    created_at: datetime
    updated_at: datetime


class FenceList(msgspec.Struct):
    """Every geofence, by id."""

    geofences: list[FenceOut]


def _out(r: fences.FenceRecord) -> FenceOut:
    shape = None
    if r.kind == "circle" and r.center_lon is not None and r.center_lat is not None and r.radius_m:
        shape = Circle(r.center_lon, r.center_lat, r.radius_m)
    kind: Literal["polygon", "circle"] = "circle" if shape is not None else "polygon"
    geometry = msgspec.to_builtins(mapping(r.geometry))
    return FenceOut(r.id, r.name, kind, geometry, shape, r.dwell_s, r.created_at, r.updated_at)


def _area(geometry: dict[str, Any] | None, shape: Circle | None) -> dict[str, Any]:
    """The stored fields of an area given as a polygon or as a circle."""
    if (geometry is None) == (shape is None):
        raise InvalidParameter("body", "give either `geometry` (a polygon) or `circle`, not both")
    if shape is not None:
        area: BaseGeometry = circle(shape.lon, shape.lat, shape.radius_m)
        centre = {"center_lon": shape.lon, "center_lat": shape.lat, "radius_m": shape.radius_m}
        return {"kind": "circle", "geometry": area, **centre}
    assert geometry is not None
    none = {"center_lon": None, "center_lat": None, "radius_m": None}
    return {"kind": "polygon", "geometry": boundary_of(geometry), **none}


async def _answer(
    request: web.Request, found: fences.FenceRecord | None, *, changed: bool = True, status: int = 200
) -> web.Response:
    """The fence (404 for none); after a change the live watch takes the fences as they now are."""
    if found is None:
        raise NotFound(f"no geofence {FENCE_ID.get(request)}")
    if changed:
        await request.app[PATROL_KEY].reload()
    return encode(_out(found), status=status)


def _by_id(method: str, summary: str, role: Role, **more: Any) -> Callable[[Handler], Handler]:
    """The declaration of a route on one geofence (`/v1/geofences/{id}`, 404 for an unknown id)."""
    path = "/v1/geofences/{id}"
    return api.route(
        method, path, summary=summary, role=role, params=[FENCE_ID], response=FenceOut, errors=[404], **more
    )


@api.route("GET", "/v1/geofences", role="viewer", response=FenceList)
async def list_fences(request: web.Request) -> web.Response:
    """Every geofence

    Every geofence, by id."""
    found = await run_db(fences.list_fences, request.app[ENGINE_KEY])
    return encode(FenceList([_out(r) for r in found]))


@_by_id("GET", "One geofence", "viewer")
async def read_fence(request: web.Request) -> web.Response:
    """The geofence."""
    found = await run_db(fences.get_fence, request.app[ENGINE_KEY], FENCE_ID.get(request))
    return await _answer(request, found, changed=False)


@api.route("POST", "/v1/geofences", role="admin", body=FenceIn, response=FenceOut, status=201, errors=[409])
async def create_fence(request: web.Request) -> web.Response:
    """Draw a geofence

    A polygon or a circle; units inside it now enter it at once."""
    body = await read_body(request, FenceIn)
    area = _area(body.geometry, body.circle)
    try:
        made = await run_db(
            fences.create_fence,
            request.app[ENGINE_KEY],
            fence_id=body.id,
            now=clock_now(request),
            name=body.name,
            dwell_s=body.dwell_s,
            **area,
        )
    except fences.FenceExists as exc:
        raise Conflict(str(exc)) from None
    return await _answer(request, made, status=201)


@_by_id("PATCH", "Change a geofence", "admin", body=FencePatch)
async def update_fence(request: web.Request) -> web.Response:
    """Change its name, area (`geometry` or `circle`) or dwell (null: the setting's)."""
    fence_id = FENCE_ID.get(request)
    body = await read_body(request, FencePatch)
    fields = {k: v for k, v in (("name", body.name), ("dwell_s", body.dwell_s)) if v is not UNSET}
    geometry = body.geometry if isinstance(body.geometry, dict) else None
    shape = body.circle if isinstance(body.circle, Circle) else None
    if geometry is not None or shape is not None:
        fields |= _area(geometry, shape)
    changed = await run_db(
        fences.update_fence, request.app[ENGINE_KEY], fence_id, now=clock_now(request), **fields
    )
    return await _answer(request, changed)


@_by_id("DELETE", "Delete a geofence", "admin")
async def delete_fence(request: web.Request) -> web.Response:
    """The fence is gone; units inside it leave it (an exit event each). Answers what it was."""
    gone = await run_db(fences.delete_fence, request.app[ENGINE_KEY], FENCE_ID.get(request))
    return await _answer(request, gone)
