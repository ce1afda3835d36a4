"""Samples to MQTT messages, in Outpost's own format or OwnTracks, plus deliberately bad messages.

Outpost: topic `outpost/v1/devices/{device_id}/fix`, JSON {ts (epoch ms), lat, lon, acc_m, speed_mps,
heading_deg, battery_pct, seq}. OwnTracks: topic `owntracks/{user}/{device_id}`, `_type: location` with tst
(epoch s), acc (m), vel (km/h), cog, batt, tid; it has no sequence number.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from schemas.topics import FIX, device_topic, owntracks_topic
from sim.simulate.sample import Sample

Format = Literal["outpost", "owntracks"]
BAD_KINDS = ("nan", "out_of_range", "future_ts", "garbage")
OWNTRACKS_USER = "outpost"
_encode = msgspec.json.Encoder().encode


def topic_for(fmt: Format, device_id: str) -> str:
    """The topic a device publishes its fixes on."""
    if fmt == "owntracks":
        return owntracks_topic(OWNTRACKS_USER, device_id)
    return device_topic(device_id, FIX)


def encode(fmt: Format, sample: Sample, ts_ms: int, seq: int) -> bytes:
    """The payload of one valid fix."""
    if fmt == "owntracks":
        body: dict[str, object] = {
            "_type": "location",
            "tst": ts_ms // 1000,
            "lat": sample.lat,
            "lon": sample.lon,
            "tid": sample.device_id[-2:],
        }
        if sample.acc_m is not None:
            body["acc"] = round(sample.acc_m)
        if sample.speed_mps is not None:
            body["vel"] = round(sample.speed_mps * 3.6)
        if sample.heading_deg is not None:
            body["cog"] = round(sample.heading_deg)
        if sample.battery_pct is not None:
            body["batt"] = round(sample.battery_pct)
        return _encode(body)
    body = {"ts": ts_ms, "lat": sample.lat, "lon": sample.lon}
    for name in ("acc_m", "speed_mps", "heading_deg", "battery_pct"):
        value = getattr(sample, name)
        if value is not None:
            body[name] = value
    body["seq"] = seq
    return _encode(body)


def bad_payload(kind: str, fmt: Format, sample: Sample, ts_ms: int, rng: random.Random) -> bytes:
    """A message ingest must reject: NaN (as Python's json writes it), out of range, far future, garbage."""
    lat_key, ts_key = ("lat", "tst") if fmt == "owntracks" else ("lat", "ts")
    ts_value = ts_ms // 1000 if fmt == "owntracks" else ts_ms
    head = '{"_type":"location",' if fmt == "owntracks" else "{"
    if kind == "nan":
        return f'{head}"{ts_key}":{ts_value},"{lat_key}":NaN,"lon":{sample.lon}}}'.encode()
    if kind == "out_of_range":
        return (
            f'{head}"{ts_key}":{ts_value},"{lat_key}":{91 + rng.random():.5f},"lon":{sample.lon}}}'.encode()
        )
    if kind == "future_ts":
        future = ts_value + (86_400 if fmt == "owntracks" else 86_400_000)
        return f'{head}"{ts_key}":{future},"{lat_key}":{sample.lat},"lon":{sample.lon}}}'.encode()
    return bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64))) + b"\xff\xfe"  # never valid UTF-8


@dataclass
class Faults:
    """Extra messages for load tests: a share of bad messages (never taking a `seq`, so the valid stream
    stays gap-free) and a share of redeliveries (the same bytes again, as a device resending after a lost
    PUBACK)."""

    bad_share: float = 0.0
    redeliver_share: float = 0.0
    seed: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def extra(self, fmt: Format, sample: Sample, ts_ms: int, valid: bytes) -> list[bytes]:
        """The extra payloads to publish next to the valid one (usually none)."""
        out: list[bytes] = []
        if self.bad_share and self.rng.random() < self.bad_share:
            kind = self.rng.choice(BAD_KINDS)
            out.append(bad_payload(kind, fmt, sample, ts_ms, self.rng))
            self.counts[kind] = self.counts.get(kind, 0) + 1
        if self.redeliver_share and self.rng.random() < self.redeliver_share:
            out.append(valid)
            self.counts["redelivered"] = self.counts.get("redelivered", 0) + 1
        return out
