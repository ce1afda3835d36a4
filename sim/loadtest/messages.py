"""The messages a simulated device sends, valid or deliberately bad, in each input format Outpost accepts.

Every message of a run is identified by (device, seq). Outpost's own format carries `seq`; OwnTracks and the
OsmAnd HTTP protocol do not, so for them the oracle recognises a stored fix by (device, ts) instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import msgspec

from schemas.topics import FIX, device_topic, owntracks_topic
from sim.loadtest.motion import Sample

BAD_KINDS = ("nan", "out_of_range", "future", "garbage")
# The reason Outpost gives each kind of bad message we inject (names from ingest.decode.reasons and
# ingest.rules). In JSON the NaN literal that careless firmware (and Python's json) writes is not JSON at
# all, so Outpost's strict decoder calls it invalid_json; over HTTP `lat=nan` is a number that validation
# rejects as non_finite, and garbage is a malformed parameter rather than broken JSON.
EXPECTED_REASON = {
    "nan": "invalid_json",
    "out_of_range": "lat_out_of_range",
    "future": "future",
    "garbage": "invalid_json",
}
_HTTP_EXPECTED_REASON = {**EXPECTED_REASON, "nan": "non_finite", "garbage": "invalid_schema"}
FUTURE_SHIFT_MS = 86_400_000  # a day ahead: far beyond any sane max_future_s
VALID = "valid"

_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class Message:
    """One message as sent: MQTT topic and payload, or for HTTP the path and the url-encoded query."""

    device: str  # the fleet's name for the device, e.g. "d000042"
    device_id: str  # the id Outpost sees, e.g. "lt-3fa2c1-d000042"
    seq: int
    ts_ms: int
    kind: str  # VALID or one of BAD_KINDS
    topic: str
    payload: bytes


def expected_reason(fmt: str, kind: str) -> str:
    """The dead-letter reason Outpost should give a bad message of `kind` sent in format `fmt`."""
    return (_HTTP_EXPECTED_REASON if fmt == "http" else EXPECTED_REASON)[kind]


def build(
    fmt: str, device: str, device_id: str, seq: int, ts_ms: int, sample: Sample, kind: str, http_path: str
) -> Message:
    """Encode one fix of `device` in format `fmt`, spoiled as `kind` says."""
    if kind == "future":
        ts_ms += FUTURE_SHIFT_MS
    fields = _fields(sample, kind)
    if fmt == "outpost":
        topic, payload = _outpost(device_id, seq, ts_ms, fields, kind)
    elif fmt == "owntracks":
        topic, payload = _owntracks(device_id, device, ts_ms, fields, kind)
    elif fmt == "http":
        topic, payload = http_path, _osmand(device_id, ts_ms, fields, kind)
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return Message(device, device_id, seq, ts_ms, kind, topic, payload)


def _fields(sample: Sample, kind: str) -> dict[str, float]:
    lat = sample.lat
    if kind == "nan":
        lat = float("nan")
    elif kind == "out_of_range":
        lat = 91.5
    return {
        "lat": round(lat, 7),
        "lon": round(sample.lon, 7),
        "speed_mps": round(sample.speed_mps, 2),
        "heading_deg": round(sample.heading_deg, 1),
    }


def _outpost(device_id: str, seq: int, ts_ms: int, fields: dict[str, float], kind: str) -> tuple[str, bytes]:
    topic = device_topic(device_id, FIX)
    if kind == "garbage":
        return topic, b'{"ts": ' + str(ts_ms).encode() + b', "lat": 37.7, "lon": '
    body: dict[str, Any] = {"ts": ts_ms, **fields, "acc_m": 5.0, "battery_pct": 80.0, "seq": seq}
    # msgspec writes NaN as null; the NaN case needs Python's json, which writes the literal NaN devices send.
    return topic, json.dumps(body).encode() if kind == "nan" else _encode(body)


def _owntracks(
    device_id: str, device: str, ts_ms: int, fields: dict[str, float], kind: str
) -> tuple[str, bytes]:
    # owntracks/<user>/<device>: the user part carries the run's prefix, so ids stay unique to the run.
    user = device_id[: -len(device) - 1]
    topic = owntracks_topic(user, device)
    if kind == "garbage":
        return topic, b'{"_type": "location", "lat": '
    body = {
        "_type": "location",
        "tid": "lt",
        "tst": ts_ms // 1000,
        "lat": fields["lat"],
        "lon": fields["lon"],
        "acc": 5,
        "vel": round(fields["speed_mps"] * 3.6),
        "cog": round(fields["heading_deg"]),
        "batt": 80,
    }
    return topic, json.dumps(body).encode()


def _osmand(device_id: str, ts_ms: int, fields: dict[str, float], kind: str) -> bytes:
    params: dict[str, Any] = {
        "id": device_id,
        "timestamp": ts_ms // 1000,
        "lat": fields["lat"],
        "lon": fields["lon"],
        "speed": round(fields["speed_mps"] / 0.514444, 2),
        "bearing": fields["heading_deg"],
        "accuracy": 5,
        "batt": 80,
    }
    if kind == "garbage":
        params["lat"] = "north-ish"
    return urlencode(params).encode()
