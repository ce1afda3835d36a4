"""The durable spool: order, limits, segments, and recovery from a torn or corrupt tail after a crash."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.spool import Spool, SpoolFull
from schemas.fix import Fix, RejectedMessage

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def fixes(n: int, start: int = 0, device: str = "cam-1") -> list[Fix]:
    return [
        Fix(
            device_id=device,
            ts=T0 + timedelta(seconds=start + i),
            lon=-122.4,
            lat=37.7,
            received_at=T0,
            seq=start + i,
        )
        for i in range(n)
    ]


def drain(spool: Spool) -> list[int]:
    """Every spooled fix's seq, in order, committing as it goes."""
    out: list[int] = []
    while records := spool.peek(max_fixes=7):
        out += [f.seq or 0 for r in records for f in r.entry.fixes]
        spool.commit(records[-1].end)
    return out


def test_batches_come_back_in_order_and_intact(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    dead = RejectedMessage(
        received_at=T0, source="t", reasons=("invalid_json",), raw=b"\xff{", device_id=None
    )
    spool.append(fixes(3), [dead])
    spool.append(fixes(2, start=3), [])
    assert spool.depth_fixes == 5
    records = spool.peek()
    assert [len(r.entry.fixes) for r in records] == [3, 2]
    assert records[0].entry.rejected == [dead]
    assert records[0].entry.fixes == fixes(3)  # datetimes, floats and optionals survive the round trip
    spool.commit(records[-1].end)
    assert spool.is_empty() and spool.depth_fixes == 0


def test_undrained_batches_survive_a_restart_and_drained_ones_do_not_come_back(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    for k in range(4):
        spool.append(fixes(5, start=5 * k), [])
    first = spool.peek(max_fixes=5)
    spool.commit(first[-1].end)
    spool.close()  # as if the process died here
    again = Spool(tmp_path, max_bytes=1 << 20)
    with pytest.raises(RuntimeError, match="in use"):
        Spool(tmp_path, max_bytes=1 << 20)  # a second worker on the same folder
    assert again.depth_fixes == 15
    assert drain(again) == list(range(5, 20))


def test_a_torn_last_record_is_cut_off_and_the_rest_kept(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append(fixes(3), [])
    spool.append(fixes(3, start=3), [])
    spool.close()
    [segment] = tmp_path.glob("spool-*.log")
    size = segment.stat().st_size
    os.truncate(segment, size - 10)  # the crash hit the middle of the last write (never acknowledged)
    again = Spool(tmp_path, max_bytes=1 << 20)
    assert drain(again) == [0, 1, 2]
    again.append(fixes(1, start=9), [])  # appending after recovery starts from a clean end
    assert drain(again) == [9]


def test_a_corrupt_record_is_detected_by_its_checksum(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append(fixes(2), [])
    spool.append(fixes(2, start=2), [])
    spool.close()
    [segment] = tmp_path.glob("spool-*.log")
    data = bytearray(segment.read_bytes())
    data[-5] ^= 0xFF
    segment.write_bytes(bytes(data))
    assert drain(Spool(tmp_path, max_bytes=1 << 20)) == [0, 1]


def test_a_full_spool_refuses_and_takes_again_once_drained(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=2000)
    with pytest.raises(SpoolFull):
        for k in range(100):
            spool.append(fixes(5, start=5 * k), [])
    held = spool.depth_bytes
    assert 0 < held <= 2000
    drain(spool)
    spool.append(fixes(5, start=1000), [])
    assert drain(spool) == list(range(1000, 1005))


def test_segments_roll_over_and_drained_ones_are_deleted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=600)
    for k in range(10):
        spool.append(fixes(3, start=3 * k), [])
    assert len(list(tmp_path.glob("spool-*.log"))) > 2
    assert drain(spool) == list(range(30))
    assert len(list(tmp_path.glob("spool-*.log"))) <= 1
    spool.close()
    assert Spool(tmp_path, max_bytes=1 << 20).is_empty()


def test_a_short_write_on_a_filling_disk_is_finished_or_refused_never_taken_as_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A disk that fills mid-record: the first pwrite returns short, the next raises ENOSPC (what Linux
    # does). Injected, since a real full disk is test_chaos_outage's job.
    real_pwrite = os.pwrite
    calls = {"n": 0}

    def filling(fd: int, data: bytes, offset: int) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return real_pwrite(fd, bytes(data)[:10], offset)
        raise OSError(28, "No space left on device")

    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append(fixes(2), [])
    monkeypatch.setattr(os, "pwrite", filling)
    with pytest.raises(OSError):
        spool.append(fixes(3, start=2), [])
    monkeypatch.setattr(os, "pwrite", real_pwrite)
    spool.append(fixes(1, start=5), [])  # space again: written over the torn bytes
    assert drain(spool) == [0, 1, 5]
    spool.close()
    assert drain(Spool(tmp_path, max_bytes=1 << 20)) == []
