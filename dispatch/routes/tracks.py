"""Tracks and unit summaries: where a unit (or a device) went between two times, and what that adds up to.

`GET /v1/units/{id}/track` and `GET /v1/devices/{id}/track` answer the stored fixes in time order as GeoJSON,
GPX or CSV; without `simplify_m` the answer streams page by page (a month of 1 Hz fixes never sits in
memory), with it the track is simplified (Douglas–Peucker in metres) and answered whole. A unit's track is
one line through its devices (`geo.track.OneLine`). `GET /v1/units/{id}/summary` gives the distance
patrolled, the stops and the trips. Every answer is a read of positions and is audited.
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn

import msgspec
from aiohttp import web
from sqlalchemy import Engine

from dispatch.blocking import run_db
from dispatch.keys import AUDIT_KEY, ENGINE_KEY, SETTINGS_KEY
from dispatch.openapi import Documented, DocumentedRoutes, parameter
from dispatch.problems import InvalidParameter, Unavailable, Unprocessable
from dispatch.routes.devices import DEVICES
from dispatch.routes.instants import FROM, TO, TimeRange, time_range
from dispatch.routes.params import Number, encode
from dispatch.routes.resources import Resource, named
from dispatch.routes.restricted import REASON, record_read, restricted_reason
from dispatch.routes.track_formats import FORMATS, MEDIA_TYPES, TrackMeta, rfc3339, writer_for
from dispatch.routes.units import UNITS
from geo.track import OneLine, TrackPoint, distance_m, simplify, simplify_indices, stops_and_trips
from schemas.fix import NOT_FOR_DISPATCH
from store.tracks import TrackColumns, TrackQuery, points_of, track_columns, track_page, track_points

log = logging.getLogger(__name__)

api = DocumentedRoutes("tracks")

SIMPLIFY = Number(
    "simplify_m", "simplify the track: no dropped fix lies further than this from it (m)", 0, 10_000
)
_PAGE = 5000  # rows a database read returns at once
# Fixes that are not where the unit went: a distance, a stop or a trip leaves them out.
_NOT_MOVEMENT = NOT_FOR_DISPATCH


class _Format:
    """`format`: geojson (default), gpx or csv."""

    name = "format"

    def openapi(self) -> dict[str, object]:
        """The OpenAPI parameter object."""
        return parameter(
            self.name, "query", self.__doc__, {"type": "string", "enum": list(FORMATS), "default": "geojson"}
        )

    def get(self, request: web.Request) -> str:
        """The format asked for."""
        fmt = request.query.get(self.name, "geojson") or "geojson"
        if fmt not in FORMATS:
            raise InvalidParameter(self.name, f"must be one of {', '.join(FORMATS)}, got {fmt[:40]!r}")
        return fmt


FORMAT = _Format()
_TRACK = {"type": "object", "description": "GeoJSON FeatureCollection, GPX 1.1 or CSV (see format)"}


def _track_route(resource: Resource[Any], doc: str) -> None:
    """`GET /v1/<resource>s/{id}/track`: the track of one unit or one device."""
    owner = f"{resource.noun}_id"

    async def track(request: web.Request) -> web.StreamResponse:
        record_id = resource.path_id.get(request)
        await resource.find(request, record_id)
        return await _track(request, f"{resource.noun}:{record_id}", **{owner: record_id})

    params: list[Documented] = [resource.path_id, FROM, TO, FORMAT, SIMPLIFY, REASON]
    path = f"/v1/{resource.noun}s/{{id}}/track"
    handler = named(track, f"{resource.noun}_track", doc)
    api.route("GET", path, role="viewer", params=params, response=_TRACK, errors=[403, 422])(handler)


_track_route(
    UNITS,
    "A unit's track between two times, as GeoJSON, GPX or CSV (audited)\n\nThe fixes of the unit's devices "
    "while bound to it, one line through them, in time order.",
)
_track_route(
    DEVICES,
    "A device's track between two times, as GeoJSON, GPX or CSV (audited)\n\nEvery stored fix of the device, "
    "in time order.",
)


async def _track(
    request: web.Request, subject: str, *, unit_id: str | None = None, device_id: str | None = None
) -> web.StreamResponse:
    settings = request.app[SETTINGS_KEY]
    span = time_range(request, settings.track_max_range_s)
    fmt, tolerance_m, reason = FORMAT.get(request), SIMPLIFY.get(request), restricted_reason(request)
    query = TrackQuery(
        span.start, span.end, unit_id=unit_id, device_id=device_id, with_restricted=bool(reason)
    )
    line = OneLine(settings.fusion_recency_window_s) if unit_id is not None else None
    meta = TrackMeta(subject, span.start, span.end, tolerance_m)
    detail = {"from": span.start.isoformat(), "to": span.end.isoformat(), "format": fmt}
    await record_read(request, "read_track", subject, detail, reason)
    if tolerance_m:
        points = await _simplified(request, query, line, tolerance_m)
        writer = writer_for(fmt, meta)
        body = writer.head() + writer.points(points) + writer.tail()
        return web.Response(body=body, headers={"Content-Type": MEDIA_TYPES[fmt]})
    return await _stream(request, query, line, fmt, meta)


async def _stream(
    request: web.Request, query: TrackQuery, line: OneLine | None, fmt: str, meta: TrackMeta
) -> web.StreamResponse:
    engine = request.app[ENGINE_KEY]
    # The first page is read before the answer starts, so a database away is still a clean 503.
    page, cursor = await run_db(track_page, engine, query, None, _PAGE)
    response = web.StreamResponse(headers={"Content-Type": MEDIA_TYPES[fmt]})
    await request.app[AUDIT_KEY].settle()  # the read is durable before the answer starts (or a clean 503)
    await response.prepare(request)
    writer = writer_for(fmt, meta)
    await response.write(writer.head())
    while True:
        await response.write(writer.points(line.take(page) if line is not None else page))
        if cursor is None:
            break
        try:
            page, cursor = await run_db(track_page, engine, query, cursor, _PAGE)
        except Unavailable:
            # The answer has begun: no problem document can follow. Cut the connection, so the client
            # sees an unfinished body rather than a track that looks whole.
            log.warning("track stream cut off: the database went away", extra={"path": request.path})
            if request.transport is not None:
                request.transport.close()
            return response
    await response.write(writer.tail())
    await response.write_eof()
    return response


async def _simplified(
    request: web.Request, query: TrackQuery, line: OneLine | None, tolerance_m: float
) -> list[TrackPoint]:
    """The simplified track. A one-device range on PostgreSQL is read as columns and only the points kept
    become objects (the same points as the general path: one device's line is all its points)."""
    engine, limit = request.app[ENGINE_KEY], request.app[SETTINGS_KEY].track_max_points
    found = await run_db(_simplified_columns, engine, query, limit, tolerance_m)
    if isinstance(found, int):
        _over_limit(limit)
    if found is not None:
        return found
    return simplify(await _all_points(request, query, line), tolerance_m)


def _simplified_columns(
    engine: Engine, query: TrackQuery, limit: int, tolerance_m: float
) -> list[TrackPoint] | int | None:
    """The columnar path in one worker thread (read, Douglas–Peucker, the kept points read whole), off the
    event loop; the count when over `limit`, None when the range needs the general path."""
    columns = track_columns(engine, query, limit)
    if not isinstance(columns, TrackColumns):
        return columns
    return points_of(engine, columns, simplify_indices(columns.lons, columns.lats, tolerance_m))


async def _all_points(request: web.Request, query: TrackQuery, line: OneLine | None) -> list[TrackPoint]:
    """Every point of the range (one line for a unit), or 422 past the settings' `track_max_points`."""
    engine, limit = request.app[ENGINE_KEY], request.app[SETTINGS_KEY].track_max_points
    points = await run_db(track_points, engine, query, limit)
    if len(points) > limit:
        _over_limit(limit)
    return line.take(points) if line is not None else points


def _over_limit(limit: int) -> NoReturn:
    raise Unprocessable(
        f"more than {limit} fixes in this range (OUTPOST_TRACK_MAX_POINTS): ask for a shorter range",
        max_points=limit,
    )


class StopOut(msgspec.Struct):
    """A stay within the stop radius for at least the stop time."""

    start: str
    end: str
    duration_s: float
    lon: float
    lat: float
    fixes: int


class TripOut(msgspec.Struct):
    """The movement between two stops."""

    start: str
    end: str
    duration_s: float
    distance_m: float
    fixes: int


class UnitSummary(msgspec.Struct):
    """What a unit's track adds up to between two times."""

    unit_id: str
    start: str = msgspec.field(name="from")
    end: str = msgspec.field(name="to")
    fixes: int = 0
    first_fix: str | None = None
    last_fix: str | None = None
    distance_m: float = 0.0
    stops: list[StopOut] = msgspec.field(default_factory=list)
    trips: list[TripOut] = msgspec.field(default_factory=list)


@api.route(
    "GET",
    "/v1/units/{id}/summary",
    role="viewer",
    params=[UNITS.path_id, FROM, TO, REASON],
    response=UnitSummary,
    errors=[403, 422],
    description="Distance: great-circle legs between consecutive fixes, leaving out fixes flagged low "
    "accuracy, impossible speed, out of order or mock. A stop: a stay within OUTPOST_STOP_RADIUS_M of where "
    "it began for at least OUTPOST_STOP_MIN_S; a trip: what lies between two stops.",
)
async def unit_summary(request: web.Request) -> web.Response:
    """Distance patrolled, stops and trips of a unit between two times (audited)

    The summary of the unit's one line of fixes in the range."""
    unit_id = UNITS.path_id.get(request)
    settings = request.app[SETTINGS_KEY]
    span = time_range(request, settings.track_max_range_s)
    reason = restricted_reason(request)
    await UNITS.find(request, unit_id)
    query = TrackQuery(span.start, span.end, unit_id=unit_id, with_restricted=bool(reason))
    detail = {"from": span.start.isoformat(), "to": span.end.isoformat(), "what": "summary"}
    await record_read(request, "read_track", f"unit:{unit_id}", detail, reason)
    points = await _all_points(request, query, OneLine(settings.fusion_recency_window_s))
    return encode(_summary(unit_id, span, points, settings.stop_radius_m, settings.stop_min_s))


def _summary(
    unit_id: str, span: TimeRange, points: list[TrackPoint], radius_m: float, min_stop_s: float
) -> UnitSummary:
    stops, trips = stops_and_trips(points, radius_m, min_stop_s, _NOT_MOVEMENT)
    return UnitSummary(
        unit_id=unit_id,
        start=span.start.isoformat().replace("+00:00", "Z"),
        end=span.end.isoformat().replace("+00:00", "Z"),
        fixes=len(points),
        first_fix=rfc3339(points[0].ts_s) if points else None,
        last_fix=rfc3339(points[-1].ts_s) if points else None,
        distance_m=round(distance_m(points, _NOT_MOVEMENT), 1),
        stops=[
            StopOut(rfc3339(s.start_s), rfc3339(s.end_s), s.duration_s, s.lon, s.lat, s.points) for s in stops
        ],
        trips=[
            TripOut(
                rfc3339(t.start_s), rfc3339(t.end_s), t.end_s - t.start_s, round(t.distance_m, 1), t.points
            )
            for t in trips
        ],
    )
