"""Patrol grids over HTTP: GeoJSON for readers (viewer and up), create, change and retire for admins.

A grid is a GeoJSON Feature whose `id` is the grid's id and whose properties carry its level, name, parent,
version and validity; lists are FeatureCollections. `?at=` reads the boundaries valid at a past instant.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web
from shapely.geometry import mapping

from dispatch.blocking import run_db
from dispatch.keys import CLOCK_KEY, ENGINE_KEY, PATROL_KEY
from dispatch.openapi import DocumentedRoutes
from dispatch.problems import Conflict, InvalidParameter, NotFound
from dispatch.routes.instants import Instant
from dispatch.routes.params import PathId, QueryText, Words, read_body
from geo.boundaries import BoundaryError, read_boundary
from schemas.tables.grids import GRID_ID_PATTERN, GRID_LEVELS
from schemas.values import AreaGeometry, Name
from store import grids

GEOJSON = "application/geo+json"
GRID_ID = PathId("id", "the grid's id (e.g. community-mission)", pattern=GRID_ID_PATTERN)
api = DocumentedRoutes("grids", path_params=[GRID_ID], media_type=GEOJSON)
LEVEL = Words("level", "only grids of this level", choices=GRID_LEVELS)
_ID = re.compile(GRID_ID_PATTERN)

GridId = Annotated[str, msgspec.Meta(pattern=GRID_ID_PATTERN)]
UNSET: Any = msgspec.UNSET


class GridIn(msgspec.Struct, forbid_unknown_fields=True):
    """A new grid. A community grid without `parent_id` gets the police grid holding most of its area."""

    id: GridId
    level: Literal["police", "community"]
    name: Name
    geometry: AreaGeometry
    parent_id: GridId | None = None


class GridPatch(msgspec.Struct, forbid_unknown_fields=True):
    """Fields to change (absent: keep). A real change closes the current version and opens the next."""

    name: Name | msgspec.UnsetType = UNSET
    parent_id: GridId | msgspec.UnsetType = UNSET
    geometry: AreaGeometry | msgspec.UnsetType = UNSET


PARENT = QueryText("parent", "only the community grids of this police grid (its id)", pattern=GRID_ID_PATTERN)
AT = Instant("at", "the boundaries valid at this instant, now if absent", required=False)

_FEATURE: dict[str, Any] = {
    "type": "object",
    "description": "a GeoJSON Feature: id, geometry (MultiPolygon, lon/lat) and properties id, level, name, "
    "parent_id, version, valid_from, valid_to",
    "required": ["type", "id", "geometry", "properties"],
    "properties": {
        "type": {"const": "Feature"},
        "id": {"type": "string"},
        "geometry": {"type": "object"},
        "properties": {"type": "object"},
    },
}
_COLLECTION: dict[str, Any] = {
    "type": "object",
    "description": "a GeoJSON FeatureCollection of grids, by id",
    "properties": {"type": {"const": "FeatureCollection"}, "features": {"type": "array", "items": _FEATURE}},
}


def _feature(r: grids.GridRecord) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": r.id,
        "geometry": mapping(r.geometry),
        "properties": {
            "id": r.id,
            "level": r.level,
            "name": r.name,
            "parent_id": r.parent_id,
            "version": r.version,
            "valid_from": r.valid_from,
            "valid_to": r.valid_to,
        },
    }


def _geojson(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(value), status=status, content_type=GEOJSON)


def _grid_id(request: web.Request) -> str:
    raw = GRID_ID.get(request)
    if not _ID.match(raw):
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        raise InvalidParameter(
            "id", f"must be a grid id (a-z, 0-9, '.', '_', '-'; at most 64), got {shown!r}"
        )
    return raw


def boundary_of(geometry: dict[str, Any]) -> Any:
    """The checked area of a GeoJSON Polygon or MultiPolygon in a body (400 naming body.geometry)."""
    try:
        boundary = read_boundary(geometry)
    except BoundaryError as exc:
        raise InvalidParameter("body.geometry", str(exc)) from None
    return boundary.geometry


def _now(request: web.Request) -> datetime:
    return datetime.fromtimestamp(request.app[CLOCK_KEY].now(), UTC)


async def _write(request: web.Request, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Write through `fn`; the live patrol watch takes the grids as they now are."""
    try:
        done = await run_db(fn, request.app[ENGINE_KEY], *args, **kwargs)
        await request.app[PATROL_KEY].reload()
        return done
    except grids.GridNotFound as exc:
        raise NotFound(str(exc)) from None
    except grids.GridConflict as exc:
        raise Conflict(str(exc)) from None
    except grids.GridError as exc:
        raise InvalidParameter("body", str(exc)) from None


@api.route("GET", "/v1/grids", role="viewer", params=[LEVEL, PARENT, AT], response=_COLLECTION)
async def list_grid_features(request: web.Request) -> web.Response:
    """Grids as a GeoJSON FeatureCollection

    The current grids (or those valid at `at`), optionally of one level or one police grid's children."""
    levels = LEVEL.get(request)
    if levels is not None and len(levels) > 1:
        raise InvalidParameter("level", "give one level")
    parent = request.query.get("parent")
    if parent is not None and not _ID.match(parent):
        raise InvalidParameter("parent", f"must be a police grid's id, got {parent[:40]!r}")
    records = await run_db(
        grids.list_grids,
        request.app[ENGINE_KEY],
        level=levels[0] if levels else None,
        parent=parent,
        at=AT.get(request),
    )
    return _geojson({"type": "FeatureCollection", "features": [_feature(r) for r in records]})


@api.route("GET", "/v1/grids/{id}", role="viewer", params=[AT], response=_FEATURE)
async def read_grid(request: web.Request) -> web.Response:
    """One grid as a GeoJSON Feature

    The grid's current version (or the one valid at `at`)."""
    grid_id = _grid_id(request)
    found = await run_db(grids.get_grid, request.app[ENGINE_KEY], grid_id, at=AT.get(request))
    if found is None:
        raise NotFound(f"no grid {grid_id}" + (" at that time" if "at" in request.query else ""))
    return _geojson(_feature(found))


@api.route("POST", "/v1/grids", role="admin", body=GridIn, response=_FEATURE, status=201, errors=[409])
async def create_grid(request: web.Request) -> web.Response:
    """Create a grid

    A new police or community grid; its first version is valid from now."""
    body = await read_body(request, GridIn)
    made = await _write(
        request,
        grids.create_grid,
        grid_id=body.id,
        level=body.level,
        name=body.name,
        parent_id=body.parent_id,
        geometry=boundary_of(body.geometry),
        now=_now(request),
    )
    return _geojson(_feature(made), status=201)


@api.route("PATCH", "/v1/grids/{id}", role="admin", body=GridPatch, response=_FEATURE)
async def update_grid(request: web.Request) -> web.Response:
    """Change a grid (a new version)

    A changed name, parent or boundary closes the current version now and opens the next."""
    grid_id = _grid_id(request)
    body = await read_body(request, GridPatch)
    _, changed = await _write(
        request,
        grids.update_grid,
        grid_id,
        name=None if body.name is UNSET else body.name,
        parent_id=None if body.parent_id is UNSET else body.parent_id,
        geometry=boundary_of(body.geometry) if isinstance(body.geometry, dict) else None,
        now=_now(request),
    )
    return _geojson(_feature(changed))


@api.route("DELETE", "/v1/grids/{id}", role="admin", response=_FEATURE, errors=[409])
async def retire_grid(request: web.Request) -> web.Response:
    """Retire a grid

    Its current version ends now; its history stays for reports. A police grid must have no children."""
    grid_id = _grid_id(request)
    retired = await _write(request, grids.retire_grid, grid_id, now=_now(request))
    return _geojson(_feature(retired))
