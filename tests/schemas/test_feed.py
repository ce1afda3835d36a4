"""The live feed's message: a committed batch survives the wire exactly; anything else is a FeedError."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from schemas import feed
from schemas.feed import FeedError, decode_batch, encode_batch
from schemas.fix import Fix
from schemas.topics import FIXES_FEED_FILTER, INTERNAL_PREFIX, fixes_feed_topic, matches

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _fix(i: int, **extra: object) -> Fix:
    return Fix(f"d{i}", T0, 4.35 + i / 1000, 50.85, T0, **extra)  # type: ignore[arg-type]


def test_the_wire_fix_has_the_fields_of_fix_in_its_order() -> None:
    wire = [(f.name, f.type, f.default) for f in msgspec.structs.fields(feed._WireFix)]
    assert wire == [(f.name, f.type, f.default) for f in msgspec.structs.fields(Fix)]


def test_a_batch_round_trips_with_every_field() -> None:
    fixes = [
        _fix(1),
        _fix(2, unit_id="u2", accuracy_m=4.0, speed_mps=1.5, heading_deg=90.0, altitude_m=12.0),
        _fix(3, battery_pct=55.0, seq=7, flags=8),
    ]
    batch = decode_batch(encode_batch("ingest-a.1f2e", 42, fixes))
    assert (batch.worker, batch.seq, batch.fixes) == ("ingest-a.1f2e", 42, fixes)
    assert batch.fixes[0].ts.tzinfo is not None


@example(b"\x94\x00\xa4\x00\x00\x00\x80")  # a string of invalid UTF-8 (found by this test in CI)
@given(st.binary(max_size=200))
def test_garbage_is_a_feed_error_never_another_exception(payload: bytes) -> None:
    with contextlib.suppress(FeedError):
        decode_batch(payload)


def test_another_version_is_refused() -> None:
    payload = msgspec.msgpack.encode([2, "w", 1, []])
    with pytest.raises(FeedError, match="version 2"):
        decode_batch(payload)


def test_the_feed_lives_under_the_internal_prefix_devices_are_denied() -> None:
    topic = fixes_feed_topic("ingest-a.1f2e")
    assert topic.startswith(INTERNAL_PREFIX)
    assert matches(topic.split("/"), FIXES_FEED_FILTER.split("/"))
    assert not topic.startswith("outpost/v1/")


def test_a_restricted_fix_stays_off_the_feed() -> None:
    at = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    kept = Fix("d-1", at, -122.4, 37.7, at)
    private = Fix("d-2", at, -122.4, 37.7, at, restricted=True)  # taken off duty
    assert decode_batch(encode_batch("w", 1, [kept, private])).fixes == [kept]
