"""Heat maps: `GET /v1/heatmap/incidents`, incidents counted per H3 hexagon as a GeoJSON FeatureCollection.

The counting runs in the database (`store.heatmap`, GROUP BY the stored cell's parent); this module checks
the parameters and draws each hexagon. Not audited: it shows where incidents were reported, aggregated, and
no unit's position (reads of positions are what the audit log records, as for tracks and snapshots).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiohttp import web
from shapely import Point
from shapely.prepared import prep

from dispatch.auth import principal
from dispatch.blocking import run_db
from dispatch.keys import AUDIT_KEY, CLOCK_KEY, ENGINE_KEY, SETTINGS_KEY
from dispatch.openapi import DocumentedRoutes
from dispatch.problems import InvalidParameter, Unprocessable
from dispatch.routes.instants import FROM, TO
from dispatch.routes.params import Integer, QueryText, Words
from dispatch.settings import ApiSettings
from geo.hexes import MAX_RES, boundary, cell_id
from schemas.tables.incidents import PRIORITIES
from store import registry
from store.grids.records import get_grid
from store.heatmap import HeatmapQuery, hex_counts, incident_categories
from store.presence import PresenceQuery, PresenceSettings, presence_cells

api = DocumentedRoutes("heatmap")

GEOJSON = "application/geo+json"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RES = Integer("res", "the H3 resolution of the hexagons (8: ~0.7 km², 9: ~0.1 km²)", 8, 0, MAX_RES)
CATEGORY = Words("category", "only incidents of these categories (as stored, any case)")
PRIORITY = Words("priority", "only incidents of these priorities", choices=PRIORITIES)
HOUR = Words(
    "hour",
    "only incidents reported in these hours of the day (0–23, station time)",
    [str(h) for h in range(24)],
)
WEEKDAY = Words(
    "weekday",
    "only incidents reported on these days (station time; mon … sun, or ISO 1 … 7)",
    WEEKDAYS,
    [str(d) for d in range(1, 8)],
)

_COLLECTION: dict[str, Any] = {
    "type": "object",
    "description": "a GeoJSON FeatureCollection: one Polygon Feature a hexagon with at least one incident "
    "(id and properties.cell: the H3 index; properties.count), and the members res, from, to, timezone, "
    "total (incidents counted) and max_count",
    "properties": {
        "type": {"const": "FeatureCollection"},
        "features": {"type": "array", "items": {"type": "object"}},
        "res": {"type": "integer"},
        "total": {"type": "integer"},
        "max_count": {"type": "integer"},
    },
}


@api.route(
    "GET",
    "/v1/heatmap/incidents",
    role="viewer",
    params=[RES, FROM, TO, CATEGORY, PRIORITY, HOUR, WEEKDAY],
    response=_COLLECTION,
    errors=[422],
    media_type=GEOJSON,
    description="Every incident stores its H3 cell at resolution 15 when it is stored; a hexagon at `res` "
    "counts the incidents whose cell descends from it (H3's hierarchy: a few per cent of incidents near a "
    "hexagon's edge count in its neighbour, and every level adds up exactly). `from` inclusive, `to` "
    "exclusive, both required, at most OUTPOST_HEATMAP_MAX_RANGE_S apart. `hour` and `weekday` are in "
    "the station's time zone (OUTPOST_STATION_TIMEZONE).",
)
async def incidents_heatmap(request: web.Request) -> web.Response:
    """Incidents counted per H3 hexagon between two times, as GeoJSON

    The hexagons with their counts."""
    query = await incidents_query(request)
    rows = await run_db(hex_counts, request.app[ENGINE_KEY], query)
    features = [_hexagon(cell, {"count": count}) for cell, count in rows]
    return _collection(
        features,
        res=query.res,
        **_range_members(query.start, query.end),
        timezone=query.timezone,
        total=sum(count for _, count in rows),
        max_count=max((count for _, count in rows), default=0),
    )


def span(request: web.Request) -> tuple[datetime, datetime]:
    """`from` and `to`, both required, `to` after `from`, at most OUTPOST_HEATMAP_MAX_RANGE_S apart."""
    start, end = FROM.get(request), TO.get(request)
    assert start is not None and end is not None  # both required: an unbounded range is a 400
    if end <= start:
        raise InvalidParameter("to", f"must be after from ({start.isoformat()}), got {end.isoformat()}")
    limit_s = request.app[SETTINGS_KEY].heatmap_max_range_s
    if (end - start).total_seconds() > limit_s:
        why = (
            f"the range is longer than the {limit_s:g} s one heat map may count (OUTPOST_HEATMAP_MAX_RANGE_S)"
        )
        raise Unprocessable(f"to: {why}", invalid_params=[{"name": "to", "reason": why}], max_range_s=limit_s)
    return start, end


async def incidents_query(request: web.Request) -> HeatmapQuery:
    """The incident filters of the request, checked (400 naming the parameter)."""
    settings = request.app[SETTINGS_KEY]
    res = RES.get(request)
    start, end = span(request)
    categories = CATEGORY.get(request) or ()
    if categories:
        known = set(await run_db(incident_categories, request.app[ENGINE_KEY]))
        unknown = [c for c in categories if c.lower() not in known]
        if unknown:
            shown = ", ".join(sorted(known)[:50]) or "none yet"
            raise InvalidParameter("category", f"no incident has category {unknown[0]!r} (known: {shown})")
    weekdays = tuple(int(d) if d.isdigit() else WEEKDAYS.index(d) + 1 for d in WEEKDAY.get(request) or ())
    return HeatmapQuery(
        res=res,
        start=start,
        end=end,
        categories=categories,
        priorities=PRIORITY.get(request) or (),
        hours=tuple(int(h) for h in HOUR.get(request) or ()),
        weekdays=tuple(dict.fromkeys(weekdays)),
        timezone=settings.station_timezone,
    )


def rfc3339(at: datetime) -> str:
    """An instant as RFC 3339 UTC with a Z."""
    return at.isoformat().replace("+00:00", "Z")


# ---- patrol presence and gaps ----------------------------------------------------------------------------

UNIT = Words("unit", "only the presence of these units (ids)")
GRID = QueryText("grid", "only the hexagons whose centre lies inside this grid's current area (a grid id)")
LIMIT = Integer("limit", "how many cells the ranking answers", 50, 1, 5000)
_PRESENCE_DOC = (
    "On-duty unit-minutes per H3 hexagon: each accepted fix (flagged low accuracy, impossible speed, out of "
    "order or mock left out) counts from its time until the unit's next fix, at most OUTPOST_PRESENCE_MAX_"
    "GAP_S, and only while the unit was on duty per its status history (every status but off_duty and "
    "out_of_service). `res` at most OUTPOST_PATROL_RES. Audited: it shows where units were."
)


def presence_settings(settings: ApiSettings) -> PresenceSettings:
    """How presence is counted, from the API's settings (the routes and the store's refresh alike)."""
    return PresenceSettings(settings.patrol_res, settings.presence_max_gap_s, settings.presence_settle_s)


async def _presence_query(request: web.Request, res: int) -> PresenceQuery:
    settings, engine = request.app[SETTINGS_KEY], request.app[ENGINE_KEY]
    if res > settings.patrol_res:
        raise InvalidParameter(
            "res", f"presence is counted at resolution {settings.patrol_res} (OUTPOST_PATROL_RES): ask ≤ it"
        )
    start, end = span(request)
    unit_ids = UNIT.get(request) or ()
    for unit_id in unit_ids:
        if await run_db(registry.get_unit, engine, unit_id) is None:
            raise InvalidParameter("unit", f"no unit {unit_id[:64]!r}")
    return PresenceQuery(res, start, end, unit_ids)


async def _presence(request: web.Request, query: PresenceQuery) -> dict[int, float]:
    how = presence_settings(request.app[SETTINGS_KEY])
    now = datetime.fromtimestamp(request.app[CLOCK_KEY].now(), UTC)
    rows = await run_db(presence_cells, request.app[ENGINE_KEY], query, how, now)
    return dict(rows)


async def _inside_grid(request: web.Request) -> Callable[[int], bool]:
    """Whether a cell's centre is inside the `grid` asked for (every cell when none is)."""
    grid_id = GRID.get(request)
    if not grid_id:
        return lambda cell: True
    grid = await run_db(get_grid, request.app[ENGINE_KEY], grid_id)
    if grid is None:
        raise InvalidParameter("grid", f"no grid {grid_id[:64]!r}")
    area = prep(grid.geometry)

    def inside(cell: int) -> bool:
        ring = boundary(cell)["coordinates"][0][:-1]
        return bool(
            area.contains(Point(sum(p[0] for p in ring) / len(ring), sum(p[1] for p in ring) / len(ring)))
        )

    return inside


def _audit(request: web.Request, action: str, query: PresenceQuery) -> None:
    detail = {"from": query.start.isoformat(), "to": query.end.isoformat(), "units": list(query.unit_ids)}
    request.app[AUDIT_KEY].record(principal(request).actor, action, "heatmap:patrol", detail)


@api.route(
    "GET",
    "/v1/heatmap/patrol",
    role="viewer",
    params=[RES, FROM, TO, UNIT, GRID],
    response=_COLLECTION,
    errors=[422],
    media_type=GEOJSON,
    description=_PRESENCE_DOC,
)
async def patrol_heatmap(request: web.Request) -> web.Response:
    """Patrol presence per H3 hexagon between two times, as GeoJSON (audited)

    The hexagons with their on-duty unit-minutes."""
    query = await _presence_query(request, RES.get(request))
    inside = await _inside_grid(request)
    cells = {cell: s for cell, s in (await _presence(request, query)).items() if inside(cell)}
    _audit(request, "read_presence", query)
    minutes = {cell: round(s / 60.0, 3) for cell, s in cells.items()}
    features = [_hexagon(cell, {"minutes": m}) for cell, m in sorted(minutes.items())]
    return _collection(
        features,
        res=query.res,
        **_range_members(query.start, query.end),
        total_minutes=round(sum(cells.values()) / 60.0, 3),
        max_minutes=max(minutes.values(), default=0.0),
    )


@api.route(
    "GET",
    "/v1/heatmap/gaps",
    role="viewer",
    params=[RES, FROM, TO, CATEGORY, PRIORITY, HOUR, WEEKDAY, GRID, LIMIT],
    response=_COLLECTION,
    errors=[422],
    media_type=GEOJSON,
    description="Every hexagon with incidents in the range (filtered as for /v1/heatmap/incidents), with its "
    "incidents, its patrol hours (on-duty unit-hours, as /v1/heatmap/patrol counts them) and incidents per "
    "patrol-hour; ranked: never patrolled first (most incidents first), then the most incidents per "
    "patrol-hour. `rank` from 1. Audited: it shows where units were.",
)
async def gaps_heatmap(request: web.Request) -> web.Response:
    """Hexagons ranked by incidents per patrol-hour: where the station patrols least for what happens there

    The ranking, as GeoJSON hexagons."""
    incidents = await incidents_query(request)
    query = await _presence_query(request, incidents.res)
    inside = await _inside_grid(request)
    counts = [(c, n) for c, n in await run_db(hex_counts, request.app[ENGINE_KEY], incidents) if inside(c)]
    hours = {cell: s / 3600.0 for cell, s in (await _presence(request, query)).items()}
    _audit(request, "read_gaps", query)
    ranked = sorted(counts, key=lambda cn: _gap_key(cn[1], hours.get(cn[0], 0.0), cn[0]))
    features = [
        _hexagon(
            cell,
            {
                "rank": rank,
                "incidents": n,
                "patrol_hours": round(hours.get(cell, 0.0), 4),
                "incidents_per_patrol_hour": round(n / hours[cell], 4) if hours.get(cell) else None,
            },
        )
        for rank, (cell, n) in enumerate(ranked[: LIMIT.get(request)], start=1)
    ]
    return _collection(features, res=query.res, **_range_members(query.start, query.end), cells=len(ranked))


def _gap_key(incidents: int, hours: float, cell: int) -> tuple[int, float, int]:
    if hours <= 0:
        return (0, -float(incidents), cell)
    return (1, -incidents / hours, cell)


def _hexagon(cell: int, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": cell_id(cell),
        "geometry": boundary(cell),
        "properties": {"cell": cell_id(cell), **properties},
    }


def _range_members(start: datetime, end: datetime) -> dict[str, str]:
    return {"from": rfc3339(start), "to": rfc3339(end)}


def _collection(features: list[dict[str, Any]], **members: Any) -> web.Response:
    document = {"type": "FeatureCollection", **members, "features": features}
    return web.Response(body=msgspec.json.encode(document), content_type=GEOJSON)
