"""Outpost's own MQTT format: `outpost/v1/devices/{device_id}/fix`, a JSON object or an array of them.

Published as a JSON Schema in schemas/json/fix.schema.json (kept in step with `OwnFix` by a test).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from ingest.decode import reasons as r
from ingest.decode.common import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    ElementError,
    admit,
    as_utc,
    decode_elements,
    heading,
    never_raises,
    utc_from_epoch_ms,
)
from ingest.decode.model import Candidate, Decoded, empty

# RFC 3339 with an offset (msgspec refuses a naive time), or integer epoch milliseconds.
Timestamp = Annotated[datetime, msgspec.Meta(tz=True)] | int
# fixes.seq is a BIGINT.
Seq = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


class OwnFix(msgspec.Struct, gc=False):
    """One fix as a device sends it. Unknown fields are ignored so that devices can run ahead of us."""

    ts: Timestamp
    lat: float
    lon: float
    acc_m: float | None = None
    alt_m: float | None = None
    speed_mps: float | None = None
    heading_deg: float | None = None
    battery_pct: float | None = None
    seq: Seq | None = None
    mock: bool = False
    device_id: str | None = None  # optional; when present it must equal the topic's


_FAST = msgspec.json.Decoder(OwnFix | list[OwnFix])
_ONE = msgspec.json.Decoder(OwnFix)


@never_raises
def decode_outpost(
    device_id: str, payload: bytes, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
) -> Decoded:
    """Decode our own format for the device named by the topic."""
    return decode(device_id, payload, max_payload_bytes)


def decode(device_id: str, payload: bytes, max_payload_bytes: int) -> Decoded:
    """decode_outpost without its safety net, for callers that have one (decode_mqtt)."""
    out = empty()
    # A blank payload clears a retained message: housekeeping, not an error.
    if not admit(out, payload, max_payload_bytes, device_id, "outpost:empty_payload"):
        return out

    def handle(fix: OwnFix) -> None:
        out.candidates.append(_candidate(device_id, fix))

    decode_elements(payload, _FAST, _ONE, handle, out, device_id, "outpost")
    return out


def _candidate(device_id: str, fix: OwnFix) -> Candidate:
    if fix.device_id is not None and fix.device_id != device_id:
        raise ElementError(r.IDENTITY_MISMATCH, f"payload names device {fix.device_id[:40]!r}")
    ts = fix.ts
    return Candidate(
        device_id=device_id,
        ts=utc_from_epoch_ms(ts, "ts") if isinstance(ts, int) else as_utc(ts, "ts"),
        lon=fix.lon,
        lat=fix.lat,
        accuracy_m=fix.acc_m,
        speed_mps=fix.speed_mps,
        heading_deg=heading(fix.heading_deg),
        altitude_m=fix.alt_m,
        battery_pct=fix.battery_pct,
        seq=fix.seq,
        mock=fix.mock,
    )
