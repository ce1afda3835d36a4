"""The live stream of unit positions and status changes for consoles and the live map (Server-Sent Events).

Each connection is one `EventBus` subscription: moves coalesced per unit (at most one per
ApiSettings.stream_coalesce_s), status changes and other events at once. With `bbox`, moves outside the box
are not sent and the stream opens with a snapshot of the units inside it. A console that falls too far behind
gets a final `stream.closed` event and should reconnect. Subscribing is written to the audit log.

Ids (`dispatch.events`): every bus event carries its bus-wide id, increasing across connections and
restarts. A fresh connection first states where it stands (an `id:` line with no data, which sets the
client's last event id and dispatches nothing); the snapshot and the stream's own messages carry no id. A
client that reconnects with `Last-Event-ID` is sent what it missed from the bus's bounded buffer, then the
live events; when the gap is too old (or the id is from another run) it gets one `resync` event (with the
current id) and should reload its snapshot, the stream going on from there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import web

from dispatch.auth import principal
from dispatch.events import KEEPALIVE, Event, Subscription
from dispatch.fleet import Fleet
from dispatch.keys import AUDIT_KEY, BUS_KEY, CLOCK_KEY, FLEET_KEY, SETTINGS_KEY, STREAM_SLOTS_KEY
from dispatch.live import DevicesSeparated, FleetEvent, StatusChanged, UnitMoved
from dispatch.openapi import SSE_EVENT, DocumentedRoutes, parameter
from dispatch.problems import InvalidParameter
from dispatch.routes import present
from dispatch.routes.params import Bbox
from dispatch.routes.present import utc_of

api = DocumentedRoutes("live")
BBOX = Bbox(description="only moves inside minlon,minlat,maxlon,maxlat (and a snapshot of them first)")


class LastEventId:
    """`Last-Event-ID`: the id of the last event the client saw; the stream resumes after it."""

    name = "Last-Event-ID"

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI parameter object."""
        return parameter(
            self.name,
            "header",
            "the id of the last event received; what came after it is sent first, or a "
            "`resync` event when that is no longer held",
            {"type": "integer", "minimum": 0},
        )

    def get(self, request: web.Request) -> int | None:
        """The id, or None when absent."""
        raw = request.headers.get(self.name, "").strip()
        if not raw:
            return None
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:  # int() would take "١٢"
            raise InvalidParameter(self.name, f"must be a non-negative integer event id, got {raw[:40]!r}")
        return int(raw)


LAST_EVENT_ID = LastEventId()


def grids_at(fleet: Fleet, unit_id: str, lon: float, lat: float) -> Event:
    """A unit event's `community_grid` and `police_grid` ({id, name} or null) at (lon, lat)."""
    where = fleet.zones.location(unit_id, lon, lat)
    return {
        "community_grid": msgspec.to_builtins(present.grid_ref(where.community)),
        "police_grid": msgspec.to_builtins(present.grid_ref(where.police)),
    }


def stream_event(event: FleetEvent, fleet: Fleet) -> tuple[Event, str | None]:
    """The stream payload of a fleet event, and its coalescing key (moves coalesce per unit)."""
    if isinstance(event, UnitMoved):
        return (
            {
                "type": event.type,
                "unit_id": event.unit_id,
                "lon": event.lon,
                "lat": event.lat,
                "ts": utc_of(event.ts_s).isoformat(),
                "accuracy_m": event.accuracy_m,
                "device_id": event.device_id,
                **grids_at(fleet, event.unit_id, event.lon, event.lat),
            },
            event.unit_id,
        )
    if isinstance(event, StatusChanged):
        payload: Event = {
            "type": event.type,
            "unit_id": event.unit_id,
            "old": event.old,
            "new": event.new,
            "actor": event.actor,
            "at": utc_of(event.at_s).isoformat(),
        }
        position = fleet.position(event.unit_id)
        if position is not None:
            payload.update(lon=position.lon, lat=position.lat)
        return payload, None
    assert isinstance(event, DevicesSeparated)
    return (
        {
            "type": event.type,
            "unit_id": event.unit_id,
            "device_a": event.device_a,
            "device_b": event.device_b,
            "distance_m": event.distance_m,
            "separated": event.separated,
            "ts": utc_of(event.ts_s).isoformat(),
        },
        None,
    )


def in_box(box: tuple[float, float, float, float]) -> Callable[[Event], bool]:
    """An event filter: moves pass when inside the box; every other event passes (a status change matters
    to a console wherever the unit is)."""
    min_lon, min_lat, max_lon, max_lat = box

    def accept(event: Event) -> bool:
        if event["type"] != "unit.moved":
            return True
        lon, lat = event["lon"], event["lat"]
        inside_lon = min_lon <= lon <= max_lon if min_lon <= max_lon else (lon >= min_lon or lon <= max_lon)
        return bool(inside_lon and min_lat <= lat <= max_lat)

    return accept


def sse(event: Event, event_id: int = 0) -> bytes:
    """One Server-Sent Events message (with no `id:` line when `event_id` is 0: not a bus event)."""
    head = b"id: %d\n" % event_id if event_id else b""
    return head + b"event: %s\ndata: %s\n\n" % (event["type"].encode(), msgspec.json.encode(event))


@api.route(
    "GET",
    "/v1/stream",
    role="viewer",
    params=[BBOX, LAST_EVENT_ID],
    response=dict(SSE_EVENT),
    media_type="text/event-stream",
    errors=[429],
)
async def stream(request: web.Request) -> web.StreamResponse:
    """Live unit positions and status changes (Server-Sent Events)

    A `text/event-stream` of `unit.moved` (coalesced per unit), `unit.status`, `unit.devices_separated`
    and other live events: incidents (`incident.*`), the patrol watch's (`grid.entered`/`exited`,
    `geofence.*`, `out_of_grid.raised`/`cleared`, `coverage_gap.raised`/`cleared`), device health
    (`device_offline.raised`/`cleared`, `battery_low.raised`/`cleared`, the priority `device.alarm` of an
    SOS), field events (`unit.checkin`, `rollcall.*`); each `data:` a JSON object with a `type` and each
    with an increasing `id:`. The patrol and health events also carry their own `id` (a UUID, the same on
    MQTT `outpost/v1/events/{type}`) and `at`; the README's events table lists their fields.
    Reconnect with `Last-Event-ID` to be sent what was missed, or a `resync` event when that is
    older than the server's buffer (reload the snapshot then). At most OUTPOST_STREAM_MAX_PER_TOKEN streams
    of one token (429 beyond) and OUTPOST_STREAM_MAX_TOTAL in all (503 beyond), both with Retry-After."""
    with request.app[STREAM_SLOTS_KEY].hold(principal(request).token_id):
        return await _stream(request)


async def _stream(request: web.Request) -> web.StreamResponse:
    app = request.app
    box = BBOX.get(request)
    after = LAST_EVENT_ID.get(request)
    accept = in_box(box) if box else None
    bus = app[BUS_KEY]
    # Subscribing and reading the buffer with no await between: nothing falls in the gap, nothing twice.
    sub = bus.subscribe(accept)
    at_id = bus.last_id
    missed = bus.replay(after, accept) if after is not None else None
    app[AUDIT_KEY].record(
        principal(request).actor,
        "stream",
        "bbox:" + ",".join(f"{v:.6f}" for v in box) if box else "all",
        None,
    )
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    keepalive = asyncio.create_task(_keepalive(request, sub), name="stream-keepalive")
    try:
        await app[AUDIT_KEY].settle()  # the subscription is durable before the stream starts (or a clean 503)
        await response.prepare(request)
        await response.write(b"retry: 2000\n\n")
        if missed is not None:
            for event_id, event in missed:
                await response.write(sse(event, event_id))
        else:
            if after is not None:
                resync = {"type": "resync", "reason": "missed events are no longer held", "id": at_id}
                await response.write(sse(resync, at_id))
            if box is not None:
                for p in app[FLEET_KEY].in_bbox(*box):
                    await response.write(
                        sse(
                            {
                                "type": "unit.snapshot",
                                "unit_id": p.unit_id,
                                "lon": p.lon,
                                "lat": p.lat,
                                "ts": utc_of(p.ts_s).isoformat(),
                                "accuracy_m": p.accuracy_m,
                                "status": p.status,
                                "kind": p.kind,
                                **grids_at(app[FLEET_KEY], p.unit_id, p.lon, p.lat),
                            }
                        )
                    )
            if after is None:
                await response.write(b"id: %d\n\n" % at_id)  # where this stream stands; no event
        await _pump(response, sub)
    except ConnectionResetError:
        pass  # the console went away (noticed at the latest by the next keep-alive)
    finally:
        keepalive.cancel()
        sub.close()
        with contextlib.suppress(asyncio.CancelledError):
            await keepalive
    return response


async def _pump(response: web.StreamResponse, sub: Subscription) -> None:
    while True:
        event_id, event = await sub.get_stamped()
        if event is KEEPALIVE:
            await response.write(b": keep-alive\n\n")
            continue
        await response.write(sse(event, event_id))
        if event["type"] == "stream.closed":
            return


async def _keepalive(request: web.Request, sub: Subscription) -> None:
    clock, every_s = request.app[CLOCK_KEY], request.app[SETTINGS_KEY].stream_keepalive_s
    while True:
        await clock.sleep(every_s)
        sub.keepalive()
