"""OwnTracks (https://owntracks.org/booklet/tech/json/) over MQTT (`owntracks/{user}/{device}`) and in
HTTP mode (a POSTed object or array; identity from the X-Limit-U / X-Limit-D headers or the `topic` field).

Identity: OwnTracks identifies a device by user + device, so Outpost's device id is `"{user}/{device}"`,
the topic without its `owntracks/` prefix. A slash cannot occur inside an MQTT topic level, so the mapping
is one-to-one (with "-" a broker user `a` publishing as device `b-c` would become user `a-b`'s device `c`).
`tid` is a two-character display label, not an identity, and is ignored.

Units: `vel` km/h → m/s; `tst` epoch seconds → UTC; `batt` stays a percentage; `acc`, `alt` metres;
`cog` degrees. Old apps sent numbers as strings; those are parsed too. Only `_type: location` carries a
fix; every other `_type` is counted as ignored, never an error.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ingest.decode import reasons as r
from ingest.decode.common import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    KMH_MPS,
    ElementError,
    admit,
    check_device_id,
    decode_elements,
    heading,
    never_raises,
    number,
    required,
    scaled,
    unknown_if_negative,
    utc_from_epoch_s,
)
from ingest.decode.model import Candidate, Decoded, empty
from schemas.topics import owntracks_device_id, owntracks_levels

# Bounded vocabulary for Decoded.ignored (it may become a metric label): the booklet's _types.
_KNOWN_TYPES = frozenset(
    ("beacon", "card", "cmd", "configuration", "encrypted", "lwt", "request", "status", "steps",
     "transition", "waypoint", "waypoints")
)  # fmt: skip


class OtMessage(msgspec.Struct, gc=False):
    """The fields we read. Typed loosely (Any) so every _type decodes; `_location` checks the types."""

    type_: Any = msgspec.field(name="_type", default=None)
    lat: Any = None
    lon: Any = None
    tst: Any = None
    acc: Any = None
    alt: Any = None
    batt: Any = None
    vel: Any = None
    cog: Any = None
    topic: Any = None  # HTTP mode: the publish topic the app would have used, e.g. owntracks/jane/phone


_FAST = msgspec.json.Decoder(OtMessage | list[OtMessage])
_ONE = msgspec.json.Decoder(OtMessage)


@never_raises
def decode_owntracks(
    user: str, device: str, payload: bytes, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
) -> Decoded:
    """Decode an OwnTracks MQTT payload published to owntracks/{user}/{device}."""
    return decode(user, device, payload, max_payload_bytes)


def decode(user: str, device: str, payload: bytes, max_payload_bytes: int) -> Decoded:
    """decode_owntracks without its safety net, for callers that have one (decode_mqtt)."""
    return _decode(owntracks_device_id(user, device), payload, max_payload_bytes)


@never_raises
def decode_owntracks_http(
    user: str | None, device: str | None, body: bytes, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
) -> Decoded:
    """Decode an OwnTracks HTTP-mode body; identity from the X-Limit-U/-D headers, else each `topic` field."""
    if user and device:
        if "/" in user or "/" in device:
            out = empty()
            out.reject(r.INVALID_DEVICE_ID, None, "X-Limit-U / X-Limit-D must not contain '/'")
            return out
        return _decode(owntracks_device_id(user, device), body, max_payload_bytes)
    return _decode(None, body, max_payload_bytes)


def _decode(device_id: str | None, payload: bytes, max_payload_bytes: int) -> Decoded:
    out = empty()
    # A blank payload clears a retained message, not an error.
    if not admit(out, payload, max_payload_bytes, device_id, "owntracks:empty_payload"):
        return out

    def handle(message: OtMessage) -> None:
        kind = message.type_
        if kind == "location":
            out.candidates.append(_location(_identity(device_id, message.topic), message))
        elif kind is None:
            raise ElementError(r.MISSING_FIELD, "`_type` is required")
        else:
            known = isinstance(kind, str) and kind in _KNOWN_TYPES
            out.ignore(f"owntracks:_type={kind if known else 'other'}")

    decode_elements(payload, _FAST, _ONE, handle, out, device_id, "owntracks")
    return out


def _identity(device_id: str | None, topic: object) -> str:
    """The device id from the topic/headers, cross-checked against a `topic` field when both are present."""
    named = _from_topic_field(topic) if topic is not None else None
    if device_id is None:
        if named is None:
            raise ElementError(r.MISSING_FIELD, "identity: X-Limit-U/X-Limit-D headers or a `topic` field")
        return check_device_id(named)
    if named is not None and named != device_id:
        raise ElementError(r.IDENTITY_MISMATCH, f"`topic` names {named[:60]!r}", device_id)
    return device_id


def _from_topic_field(topic: object) -> str:
    if not isinstance(topic, str):
        raise ElementError(r.INVALID_SCHEMA, "`topic` must be a string")
    levels = owntracks_levels(topic)
    if levels is None:
        raise ElementError(r.INVALID_SCHEMA, f"`topic` {topic[:60]!r} is not owntracks/{{user}}/{{device}}")
    return owntracks_device_id(levels[1], levels[2])


def _location(device_id: str, m: OtMessage) -> Candidate:
    try:
        return Candidate(
            device_id=device_id,
            ts=utc_from_epoch_s(required(number(m.tst, "tst"), "tst"), "tst"),
            lon=required(number(m.lon, "lon"), "lon"),
            lat=required(number(m.lat, "lat"), "lat"),
            accuracy_m=unknown_if_negative(number(m.acc, "acc")),
            speed_mps=scaled(unknown_if_negative(number(m.vel, "vel")), KMH_MPS),
            heading_deg=heading(number(m.cog, "cog")),
            altitude_m=number(m.alt, "alt"),
            battery_pct=unknown_if_negative(number(m.batt, "batt")),
        )
    except ElementError as bad:
        bad.device_id = device_id
        raise
