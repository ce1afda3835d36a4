"""The oracle against a real store (PostgreSQL and SQLite): lost, duplicated, bad stored, rejects per reason.

The fixes are written with Outpost's own FixWriter, as ingest would write them; the oracle must see exactly
the faults planted here, and nothing else (another run's rows included).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from schemas.fix import Fix, RejectedMessage
from sim.loadtest.crew import Crew
from sim.loadtest.fleet import Fleet
from sim.loadtest.ledger import Ledger
from sim.loadtest.messages import VALID, Message
from sim.loadtest.metrics import Recorder
from sim.loadtest.motion import build_motions
from sim.loadtest.oracle import reconcile
from sim.loadtest.plan import Plan
from sim.loadtest.store import RunStore
from sim.loadtest.watcher import CommitWatcher
from store.engine import open_engine
from store.fixes import FixWriter
from tests.sim.support import RecordingTransport, SimTime


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    engine = open_engine(store_url, pool_size=2)
    yield engine
    engine.dispose()


def sent_run(bad_share: float = 0.1) -> tuple[Plan, Ledger, list[Message], SimTime]:
    plan = Plan(
        devices=5,
        rate_hz=2.0,
        duration_s=4.0,
        mqtt_url="mqtt://x:1",
        bad_share=bad_share,
        redeliver_share=0.3,
    )
    sim = SimTime(start_s=time.time() - 60.0)  # recent: inside the partitions migrate created
    transport = RecordingTransport()
    ledger = Ledger()
    crew = Crew(plan, ledger, Recorder(sim.clock()), sim.clock, sim.sleep)
    fleet = Fleet(crew, transport, build_motions(5, plan.area, 1))
    asyncio.run(fleet.run())
    return plan, ledger, transport.messages, sim


def as_fix(msg: Message, *, ts_shift_ms: int = 0) -> Fix:
    body = json.loads(msg.payload)
    ts = datetime.fromtimestamp((msg.ts_ms + ts_shift_ms) / 1000.0, UTC)
    return Fix(
        device_id=msg.device_id,
        ts=ts,
        lon=body["lon"],
        lat=body["lat"],
        received_at=ts + timedelta(milliseconds=20),
        unit_id=msg.device_id,
        seq=msg.seq,
    )


def dead_letter(msg: Message, reasons: tuple[str, ...]) -> RejectedMessage:
    return RejectedMessage(
        received_at=datetime.now(UTC),
        source=msg.topic,
        reasons=reasons,
        raw=msg.payload,
        device_id=msg.device_id if reasons != ("invalid_json",) else None,
    )


REASONS = {
    "nan": ("invalid_json",),
    "out_of_range": ("lat_out_of_range",),
    "future": ("future",),
    "garbage": ("invalid_json",),
}


def test_a_clean_run_passes_and_redeliveries_do_not_duplicate(engine: Engine) -> None:
    plan, ledger, messages, _ = sent_run()
    writer = FixWriter(engine)
    # Every message as ingest stores it, redeliveries included: the (device_id, ts) key absorbs them.
    assert writer.write([as_fix(m) for m in messages if m.kind == VALID]) == ledger.sent_valid
    writer.write_rejected([dead_letter(m, REASONS[m.kind]) for m in messages if m.kind != VALID])
    store = RunStore(engine, plan.run_tag)
    recorder = Recorder(messages[0].ts_ms / 1000.0)
    verdict = reconcile(ledger, store.stored_fixes(), store.rejected_reasons(), recorder)
    assert ledger.redelivered > 0
    assert (verdict.stored, verdict.lost, verdict.duplicated, verdict.unexpected) == (
        ledger.sent_valid,
        0,
        0,
        0,
    )
    assert verdict.rejected == {"invalid_json": 2, "lat_out_of_range": 1, "future": 1}
    assert verdict.rejects_match and verdict.passed
    assert store.counts() == (ledger.sent_valid, 4)
    # received_at is 20 ms after ts, and ts is the publish time: publish → received is 20 ms.
    summary = recorder.summary("publish_to_received")
    assert summary["count"] == ledger.sent_valid
    assert 19.0 <= summary["p50_ms"] <= 21.0


def test_the_oracle_sees_every_planted_fault_and_ignores_other_runs(engine: Engine) -> None:
    plan, ledger, messages, _ = sent_run()
    valid = [m for m in messages if m.kind == VALID]
    bad = {m.kind: m for m in messages if m.kind != VALID}
    lost, duplicated = valid[3], valid[7]
    fixes = [as_fix(m) for m in valid if m is not lost]
    fixes.append(as_fix(duplicated, ts_shift_ms=7))  # same seq under another ts: a real duplicate
    fixes.append(as_fix(bad["future"]))  # a bad fix that got stored
    other_run = Message("d000001", "lt-ffffff-d000001", 1, valid[0].ts_ms, VALID, "t", valid[0].payload)
    fixes.append(as_fix(other_run))
    writer = FixWriter(engine)
    writer.write(fixes)
    writer.write_rejected([dead_letter(bad[k], REASONS[k]) for k in ("nan", "garbage")])
    writer.write_rejected(
        [dead_letter(valid[0], ("lat_out_of_range", "null_island"))]
    )  # a valid one rejected
    writer.write_rejected([dead_letter(other_run, ("non_finite",))])

    verdict = reconcile(
        ledger,
        RunStore(engine, plan.run_tag).stored_fixes(),
        RunStore(engine, plan.run_tag).rejected_reasons(),
    )
    assert verdict.lost == 1 and verdict.lost_sample == [f"{lost.device_id}#{lost.seq}"]
    assert verdict.duplicated == 1 and verdict.duplicated_sample == [
        f"{duplicated.device_id}#{duplicated.seq}"
    ]
    assert verdict.bad_stored == {"future": 1}
    assert verdict.unexpected == 0
    assert verdict.rejected == {"invalid_json": 2, "lat_out_of_range": 1, "null_island": 1}
    assert verdict.rejected_rows == 3
    assert not verdict.rejects_match  # future was stored, not rejected
    assert not verdict.passed


def test_the_commit_watcher_times_fixes_as_they_appear(engine: Engine) -> None:
    plan, ledger, messages, sim = sent_run(bad_share=0.0)
    valid = [m for m in messages if m.kind == VALID]
    store = RunStore(engine, plan.run_tag)
    recorder = Recorder(valid[0].ts_ms / 1000.0)
    watcher = CommitWatcher(Crew(plan, ledger, recorder, sim.clock, sim.sleep), store)
    for m in valid:  # the fleet ran before the watcher existed: feed its queue as the fleet would have
        assert ledger.recent is not None
        ledger.recent.append((m.ts_ms, m.device, m.seq))
    FixWriter(engine).write([as_fix(m) for m in valid[:10]])
    seen_s = valid[9].ts_ms / 1000.0 + 0.5
    window = watcher._window_start(seen_s)
    assert window == datetime.fromtimestamp((valid[0].ts_ms - 1) / 1000.0, UTC)
    assert watcher.observe(store.fixes_since(window), seen_s) == 10
    assert watcher.observe(store.fixes_since(window), seen_s) == 0  # each fix is timed once
    assert watcher._window_start(seen_s) == datetime.fromtimestamp((valid[10].ts_ms - 1) / 1000.0, UTC)
    summary = recorder.summary("publish_to_stored")
    assert summary["count"] == 10
    assert summary["max_ms"] == pytest.approx((seen_s - valid[0].ts_ms / 1000.0) * 1000.0, rel=1e-3)
