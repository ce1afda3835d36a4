"""The fleet at a past instant, and playback frames: `GET /v1/units/snapshot?at=` or `?from=&to=&step_s=`.

Read from the store (`store.snapshot`: each unit's last stored fix at or before the instant, within
`snapshot_lookback_s`, and its status then from the status history), never from the live picture, so a
snapshot of a minute ago and one of last month are the same question. Every answer is a read of positions
and is audited; answers are `Cache-Control: no-store` (they are positions). Registered before `units`, so
`/v1/units/snapshot` is not taken for the unit `snapshot`.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import msgspec
from aiohttp import web

from dispatch.blocking import run_db
from dispatch.keys import ENGINE_KEY, SETTINGS_KEY
from dispatch.openapi import Documented, DocumentedRoutes
from dispatch.problems import InvalidParameter, Unprocessable
from dispatch.routes.instants import Instant
from dispatch.routes.params import Number
from dispatch.routes.restricted import REASON, record_read, restricted_reason
from dispatch.routes.track_formats import rfc3339
from store import registry
from store.snapshot import UnitAt, frames, snapshot

api = DocumentedRoutes("units")

AT = Instant("at", "the instant of the snapshot (alone: one snapshot)", required=False)
FROM = Instant("from", "playback: the first frame's instant (with to and step_s)", required=False)
TO = Instant(
    "to", "playback: no frame after this instant (a frame falls on it when the steps meet it)", False
)
STEP = Number("step_s", "playback: seconds between frames (default 60)", minimum=1, maximum=86400)
_NO_STORE = {"Cache-Control": "no-store"}


class UnitThen(msgspec.Struct):
    """A unit at the instant: its status then and its last fix at or before it (Nones: none in the
    look-back)."""

    id: str
    name: str
    kind: str
    status: str
    lon: float | None
    lat: float | None
    ts: str | None
    heading: float | None
    speed_mps: float | None
    device_id: str | None
    flags: int | None


class Snapshot(msgspec.Struct):
    """Every unit at one instant."""

    at: str
    units: list[UnitThen]


class Frame(msgspec.Struct):
    """One frame of a playback: every unit at `at`."""

    at: str
    units: list[UnitThen]


class Playback(msgspec.Struct):
    """Frames at from, from + step_s, … up to to."""

    start: str = msgspec.field(name="from")
    end: str = msgspec.field(name="to")
    step_s: float = 60.0
    frames: list[Frame] = msgspec.field(default_factory=list)


_DOC = (
    "With `at`: every unit, by id, with its last stored fix at or before `at` (at most "
    "OUTPOST_SNAPSHOT_LOOKBACK_S older; otherwise lon, lat and ts are null) and its status at `at` from the "
    "status history. With `from`, `to` and `step_s` instead: a playback, `{from, to, step_s, frames: [{at, "
    "units}]}`, frames at from + k·step_s up to to; more than OUTPOST_PLAYBACK_MAX_FRAMES frames or "
    "OUTPOST_PLAYBACK_MAX_POSITIONS units × frames is a 422 naming step_s. Audited as a read of positions."
)
_ARGS: list[Documented] = [AT, FROM, TO, STEP, REASON]


@api.route(
    "GET",
    "/v1/units/snapshot",
    role="viewer",
    params=_ARGS,
    response=Snapshot,
    errors=[403, 422],
    description=_DOC,
)
async def units_snapshot(request: web.Request) -> web.Response:
    """Every unit's position and status at a past instant, or playback frames (audited)

    One snapshot (`at`), or frames between two instants (`from`, `to`, `step_s`)."""
    settings, engine = request.app[SETTINGS_KEY], request.app[ENGINE_KEY]
    lookback = timedelta(seconds=settings.snapshot_lookback_s)
    at, reason = AT.get(request), restricted_reason(request)
    if at is None:
        return await _playback(request, lookback, reason)
    if FROM.name in request.query or TO.name in request.query:
        raise InvalidParameter("at", "asks for one snapshot: give either at, or from and to (a playback)")
    found = await run_db(snapshot, engine, at, lookback, with_restricted=reason is not None)
    detail = {"at": at.isoformat(), "units": len(found)}
    await record_read(request, "read_snapshot", "units:snapshot", detail, reason)
    return _encode(Snapshot(at=rfc3339(at.timestamp()), units=[_then(u) for u in found]))


async def _playback(request: web.Request, lookback: timedelta, reason: str | None) -> web.Response:
    app = request.app
    start, end = FROM.get(request), TO.get(request)
    if start is None:
        raise InvalidParameter("at", "is required (or from, to and step_s for a playback)")
    if end is None:
        raise InvalidParameter("to", "is required with from")
    if end < start:
        raise InvalidParameter("to", f"must not be before from ({start.isoformat()}), got {end.isoformat()}")
    step_s = STEP.get(request, 60.0)
    assert step_s is not None
    instants = await _instants(request, start, end, step_s)
    found = await run_db(frames, app[ENGINE_KEY], instants, lookback, with_restricted=reason is not None)
    detail = {"from": start.isoformat(), "to": end.isoformat(), "step_s": step_s, "frames": len(found)}
    await record_read(request, "read_playback", "units:snapshot", detail, reason)
    body = Playback(
        start=rfc3339(start.timestamp()),
        end=rfc3339(end.timestamp()),
        step_s=step_s,
        frames=[
            Frame(at=rfc3339(at.timestamp()), units=[_then(u) for u in units])
            for at, units in zip(instants, found, strict=True)
        ],
    )
    return _encode(body)


async def _instants(request: web.Request, start: datetime, end: datetime, step_s: float) -> list[datetime]:
    """The frames' instants, or 422 naming step_s when there would be more than the settings allow."""
    settings = request.app[SETTINGS_KEY]
    count = int((end - start).total_seconds() // step_s) + 1
    units = await run_db(registry.count_units, request.app[ENGINE_KEY])
    why = ""
    if count > settings.playback_max_frames:
        why = f"{count} frames is more than {settings.playback_max_frames} (OUTPOST_PLAYBACK_MAX_FRAMES)"
    elif count * units > settings.playback_max_positions:
        why = (
            f"{count} frames × {units} units is more than {settings.playback_max_positions} positions "
            "(OUTPOST_PLAYBACK_MAX_POSITIONS)"
        )
    if why:
        why += ": ask for a larger step_s or a shorter range"
        raise Unprocessable(
            f"step_s: {why}",
            invalid_params=[{"name": "step_s", "reason": why}],
            max_frames=settings.playback_max_frames,
            max_positions=settings.playback_max_positions,
        )
    return [start + timedelta(seconds=k * step_s) for k in range(count)]


def _then(u: UnitAt) -> UnitThen:
    fields = dataclasses.asdict(u)
    # Stored as 4-byte floats on PostgreSQL, 8-byte on SQLite: rounded, both stores say the same.
    heading, speed = _rounded(fields.pop("heading_deg")), _rounded(fields.pop("speed_mps"))
    ts = rfc3339(u.ts.timestamp()) if u.ts is not None else None
    return UnitThen(**fields | {"ts": ts, "heading": heading, "speed_mps": speed})


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _encode(body: msgspec.Struct) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), content_type="application/json", headers=_NO_STORE)
