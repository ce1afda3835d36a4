"""The OsmAnd protocol as Traccar reads it (OsmAndProtocolDecoder): query or form parameters, and the
JSON body of Traccar Client 9+ (https://www.traccar.org/osmand/).

Parameters: `id`/`deviceid`; `lat` + `lon` or `location=lat,lon`; `timestamp` as epoch seconds (below
2^31-1), epoch milliseconds, ISO 8601 (contains "T"), or "yyyy-MM-dd HH:mm:ss" (Traccar reads that in the
server's zone; we read UTC); `speed` in KNOTS; `bearing`/`heading` degrees; `altitude`, `accuracy` metres;
`batt` percent; `valid` (false or 0 → rejected as invalid_fix); `mock` (true/1). Others are ignored.
Without a timestamp Traccar uses the arrival time; so do we (`received_at`).

JSON: {"device_id", "location": {"timestamp" ISO, "coords": {latitude, longitude, accuracy, speed m/s,
heading, altitude}, "battery": {"level" 0..1, "is_charging"}, "mock"?, …}}. As in Traccar, negative speed,
heading, accuracy or battery level means unknown. `location` may also be an array (the SDK's batch sync).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from datetime import UTC, datetime

import msgspec

from ingest.decode import common
from ingest.decode import reasons as r
from ingest.decode.model import Candidate, Decoded, empty

# Traccar: a numeric timestamp below Integer.MAX_VALUE is in seconds, else milliseconds.
_SECONDS_BELOW = 2**31 - 1
_NUMERIC = re.compile(r"[+-]?\d+(\.\d*)?")


class Coords(msgspec.Struct, gc=False):
    latitude: float
    longitude: float
    accuracy: float | None = None
    speed: float | None = None  # m/s
    heading: float | None = None
    altitude: float | None = None


class Battery(msgspec.Struct, gc=False):
    level: float | None = None  # 0..1, -1 unknown


class Location(msgspec.Struct, gc=False):
    timestamp: datetime  # ISO 8601; naive is read as UTC
    coords: Coords
    battery: Battery | None = None
    mock: bool = False


class Envelope(msgspec.Struct, gc=False):
    device_id: str | int
    location: msgspec.Raw


_ENVELOPE = msgspec.json.Decoder(Envelope)
_FAST = msgspec.json.Decoder(Location | list[Location])
_ONE = msgspec.json.Decoder(Location)


@common.never_raises
def decode_traccar_http(
    query: Mapping[str, str],
    body: bytes,
    content_type: str | None,
    *,
    received_at: datetime | None = None,
    max_payload_bytes: int = common.DEFAULT_MAX_PAYLOAD_BYTES,
) -> Decoded:
    """Decode one OsmAnd / Traccar Client request (query, form body, or JSON body)."""
    out = empty()
    # No blank check: a request without a body may carry its fix in the query.
    if not common.admit(out, body, max_payload_bytes, None, None):
        return out
    if _is_json(query, body, content_type):
        _decode_json(body, out)
        return out
    params: Mapping[str, str] = query
    if not query and body.strip():
        # Already known to be UTF-8. Traccar reads the form body the same way when the query is empty.
        params = dict(urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    device_id = params.get("id") or params.get("deviceid")
    try:
        if not device_id:
            raise common.ElementError(r.MISSING_FIELD, "`id` (or `deviceid`) is required")
        out.candidates.append(_from_params(common.check_device_id(device_id), params, received_at))
    except common.ElementError as bad:
        out.reject(bad.reason, bad.device_id, bad.detail)
    return out


def _is_json(query: Mapping[str, str], body: bytes, content_type: str | None) -> bool:
    if content_type is not None:
        return content_type.split(";", 1)[0].strip().lower() == "application/json"
    return not query and body.lstrip()[:1] in (b"{", b"[")


def _from_params(device_id: str, params: Mapping[str, str], received_at: datetime | None) -> Candidate:
    def num(*names: str) -> float | None:
        for name in names:
            value = params.get(name)
            if value:  # an empty parameter is an absent one
                return common.number(value, name)
        return None

    try:
        if params.get("valid", "").lower() in ("false", "0"):
            raise common.ElementError(r.INVALID_FIX, "the device marks this fix `valid=false`")
        lat, lon = num("lat"), num("lon")
        if "location" in params and (lat is None or lon is None):
            lat, lon = _location_param(params["location"])
        stamp = params.get("timestamp")
        return Candidate(
            device_id=device_id,
            ts=_timestamp(stamp) if stamp else received_at or datetime.now(UTC),
            lon=common.required(lon, "lon"),
            lat=common.required(lat, "lat"),
            accuracy_m=common.unknown_if_negative(num("accuracy")),
            speed_mps=common.scaled(common.unknown_if_negative(num("speed")), common.KNOT_MPS),
            heading_deg=common.heading(num("bearing", "heading")),
            altitude_m=num("altitude"),
            battery_pct=common.unknown_if_negative(num("batt")),
            mock=params.get("mock", "").lower() in ("true", "1"),
        )
    except common.ElementError as bad:
        bad.device_id = device_id
        raise


def _location_param(value: str) -> tuple[float | None, float | None]:
    parts = value.split(",")
    if len(parts) != 2:
        raise common.ElementError(r.INVALID_SCHEMA, f"`location` {value[:40]!r} is not lat,lon")
    return common.number(parts[0], "location"), common.number(parts[1], "location")


def _timestamp(value: str) -> datetime:
    """Traccar's rules for the `timestamp` parameter."""
    value = value.strip()
    if _NUMERIC.fullmatch(value):
        stamp = float(value)
        return common.utc_from_epoch_s(stamp if abs(stamp) < _SECONDS_BELOW else stamp / 1000.0, "timestamp")
    if value.lower() in ("nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"):
        raise common.ElementError(r.NON_FINITE, f"`timestamp` is {value}")
    try:
        if "T" in value:
            return common.as_utc(datetime.fromisoformat(value), "timestamp")
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        raise common.ElementError(r.INVALID_TIMESTAMP, f"`timestamp` {value[:40]!r} is not a time") from None


def _decode_json(body: bytes, out: Decoded) -> None:
    try:
        envelope = _ENVELOPE.decode(body)
    except msgspec.DecodeError as err:
        reason, detail = common.name_error(err)
        out.reject(reason, None, detail)
        return
    try:
        device_id = common.check_device_id(str(envelope.device_id))
    except common.ElementError as bad:
        out.reject(bad.reason, None, bad.detail)
        return

    def handle(location: Location) -> None:
        out.candidates.append(_from_location(device_id, location))

    common.decode_elements(envelope.location, _FAST, _ONE, handle, out, device_id, "traccar")


def _from_location(device_id: str, loc: Location) -> Candidate:
    coords = loc.coords
    level = common.unknown_if_negative(loc.battery.level) if loc.battery is not None else None
    return Candidate(
        device_id=device_id,
        ts=common.as_utc(loc.timestamp, "location.timestamp"),
        lon=coords.longitude,
        lat=coords.latitude,
        accuracy_m=common.unknown_if_negative(coords.accuracy),
        speed_mps=common.unknown_if_negative(coords.speed),
        heading_deg=common.heading(coords.heading),
        altitude_m=coords.altitude,
        battery_pct=common.scaled(level, 100.0),
        mock=loc.mock,
    )
