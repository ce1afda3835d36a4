"""Heat maps: `GET /v1/heatmap/incidents`, incidents counted per H3 hexagon as a GeoJSON FeatureCollection.

The counting runs in the database (`store.heatmap`, GROUP BY the stored cell's parent); this module checks
the parameters and draws each hexagon. Not audited: it shows where incidents were reported, aggregated, and
no unit's position (reads of positions are what the audit log records, as for tracks and snapshots).
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from dispatch.blocking import run_db
from dispatch.keys import ENGINE_KEY, SETTINGS_KEY
from dispatch.openapi import DocumentedRoutes
from dispatch.problems import InvalidParameter, Unprocessable
from dispatch.routes.instants import FROM, TO
from dispatch.routes.params import Integer, Words
from geo.hexes import MAX_RES, boundary, cell_id
from schemas.tables.incidents import PRIORITIES
from store.heatmap import HeatmapQuery, hex_counts, incident_categories

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
    query = await _query(request)
    rows = await run_db(hex_counts, request.app[ENGINE_KEY], query)
    features = [
        {
            "type": "Feature",
            "id": cell_id(cell),
            "geometry": boundary(cell),
            "properties": {"cell": cell_id(cell), "count": count},
        }
        for cell, count in rows
    ]
    document = {
        "type": "FeatureCollection",
        "res": query.res,
        "from": _rfc3339(query.start.isoformat()),
        "to": _rfc3339(query.end.isoformat()),
        "timezone": query.timezone,
        "total": sum(count for _, count in rows),
        "max_count": max((count for _, count in rows), default=0),
        "features": features,
    }
    return web.Response(body=msgspec.json.encode(document), content_type=GEOJSON)


async def _query(request: web.Request) -> HeatmapQuery:
    settings = request.app[SETTINGS_KEY]
    res = RES.get(request)
    start, end = FROM.get(request), TO.get(request)
    assert start is not None and end is not None  # both required: an unbounded range is a 400
    if end <= start:
        raise InvalidParameter("to", f"must be after from ({start.isoformat()}), got {end.isoformat()}")
    limit_s = settings.heatmap_max_range_s
    if (end - start).total_seconds() > limit_s:
        why = (
            f"the range is longer than the {limit_s:g} s one heat map may count (OUTPOST_HEATMAP_MAX_RANGE_S)"
        )
        raise Unprocessable(f"to: {why}", invalid_params=[{"name": "to", "reason": why}], max_range_s=limit_s)
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


def _rfc3339(iso: str) -> str:
    return iso.replace("+00:00", "Z")
