"""The live change feed's message: one batch of fixes an ingest worker committed, as compact MessagePack.

    FeedBatch(worker, seq, fixes)   published on `outpost/internal/v1/fixes/{worker}` (schemas.topics), QoS 1

`worker` names one run of one ingest worker (its client id and a per-start nonce), and `seq` counts that
run's batches from 1, so a reader that sees seq jump knows it missed a batch (its broker connection was
down, say) and sweeps the database at once instead of waiting for its periodic sweep. A fix appears in the
feed only after the database committed it; one may appear twice (a batch redelivered and stored again, a
spooled batch drained), which the live picture ignores: it never moves a unit backwards.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import msgspec
from msgspec.structs import astuple

from schemas.fix import Fix

FEED_VERSION = 1


class _WireFix(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A Fix as a positional array: field names are not repeated for every fix (158 bytes a fix as a map,
    about 60 as an array). Same fields, same order as schemas.fix.Fix (test_feed checks they agree)."""

    device_id: str
    ts: datetime
    lon: float
    lat: float
    received_at: datetime
    unit_id: str | None = None
    accuracy_m: float | None = None
    speed_mps: float | None = None
    heading_deg: float | None = None
    altitude_m: float | None = None
    battery_pct: float | None = None
    seq: int | None = None
    flags: int = 0
    restricted: bool = False


class _WireBatch(msgspec.Struct, frozen=True, array_like=True, gc=False):
    version: int
    worker: str
    seq: int
    fixes: list[_WireFix]


class FeedBatch(NamedTuple):
    """What one feed message carries."""

    worker: str
    seq: int
    fixes: list[Fix]


class FeedError(ValueError):
    """A feed message that is not a FeedBatch of this version: a clear error, counted by the reader."""


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_WireBatch)


def encode_batch(worker: str, seq: int, fixes: list[Fix]) -> bytes:
    """The MessagePack bytes of one committed batch. Restricted fixes (taken off duty) stay out: they never
    reach a live picture, on this process or on a replica."""
    wire = [_WireFix(*astuple(f)) for f in fixes if not f.restricted]
    return _encoder.encode(_WireBatch(FEED_VERSION, worker, seq, wire))


def decode_batch(payload: bytes) -> FeedBatch:
    """The batch in `payload`; FeedError when it is not one (garbage, another version)."""
    try:
        batch = _decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        # msgspec's MessagePack decoder lets a string of invalid UTF-8 through as UnicodeDecodeError.
        raise FeedError(f"not a feed batch: {exc}") from exc
    if batch.version != FEED_VERSION:
        raise FeedError(f"feed batch version {batch.version}, this reader takes {FEED_VERSION}")
    return FeedBatch(batch.worker, batch.seq, [Fix(*astuple(w)) for w in batch.fixes])
