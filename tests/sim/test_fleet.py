"""The fleet's schedule: per-device seq and ts, exact bad shares, redeliveries that repeat the message."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from collections import Counter

from sim.loadtest.crew import Crew
from sim.loadtest.fleet import REDELIVER_DELAY_S, Fleet
from sim.loadtest.ledger import Ledger
from sim.loadtest.messages import VALID, Message
from sim.loadtest.metrics import Recorder
from sim.loadtest.motion import build_motions
from sim.loadtest.plan import Plan
from tests.sim.support import RecordingTransport, SimTime


def run_fleet(plan: Plan) -> tuple[RecordingTransport, Ledger, SimTime]:
    sim = SimTime()
    transport = RecordingTransport()
    ledger = Ledger(plan.format)
    recorder = Recorder(sim.clock())
    motions = build_motions(plan.devices, plan.area, plan.seed)
    fleet = Fleet(Crew(plan, ledger, recorder, sim.clock, sim.sleep), transport, motions)
    asyncio.run(fleet.run())
    return transport, ledger, sim


def test_each_device_publishes_at_its_rate_with_consecutive_seq_and_increasing_ts() -> None:
    plan = Plan(devices=10, rate_hz=2.0, duration_s=5.0, mqtt_url="mqtt://127.0.0.1:1")
    transport, ledger, sim = run_fleet(plan)
    assert len(transport.messages) == 100 == ledger.messages == ledger.sent_valid
    per_device: dict[str, list[tuple[int, int]]] = {}
    for msg in transport.messages:
        assert msg.topic == f"outpost/v1/devices/{msg.device_id}/fix"
        body = json.loads(msg.payload)
        assert body["seq"] == msg.seq and body["ts"] == msg.ts_ms
        assert -122.48 <= body["lon"] <= -122.38 and 37.73 <= body["lat"] <= 37.80
        per_device.setdefault(msg.device, []).append((msg.seq, msg.ts_ms))
    assert len(per_device) == 10
    for sent in per_device.values():
        assert [s for s, _ in sent] == list(range(1, 11))
        assert all(b[1] > a[1] for a, b in itertools.pairwise(sent))
    assert sim.now_s - 1_700_000_000.0 < 5.1  # the run stops by itself once the schedule is done


def test_bad_share_is_exact_and_cycles_through_the_kinds() -> None:
    plan = Plan(devices=4, rate_hz=5.0, duration_s=4.0, mqtt_url="mqtt://x:1", bad_share=0.1)
    transport, ledger, _ = run_fleet(plan)
    kinds = Counter(m.kind for m in transport.messages)
    assert kinds == {VALID: 72, "nan": 2, "out_of_range": 2, "future": 2, "garbage": 2}
    assert ledger.injected == {"invalid_json": 4, "lat_out_of_range": 2, "future": 2}
    assert ledger.sent_valid == 72
    for msg in transport.messages:
        if msg.kind == "garbage":
            assert not _parses(msg.payload)
        elif msg.kind == "nan":
            assert math.isnan(json.loads(msg.payload)["lat"])
        elif msg.kind == "out_of_range":
            assert json.loads(msg.payload)["lat"] > 90
        elif msg.kind == "future":
            assert json.loads(msg.payload)["ts"] > 1_700_000_000_000 + 86_000_000


def test_redeliveries_repeat_seq_and_ts_one_second_later() -> None:
    plan = Plan(devices=3, rate_hz=10.0, duration_s=3.0, mqtt_url="mqtt://x:1", redeliver_share=0.5, seed=7)
    transport, ledger, _ = run_fleet(plan)
    first: dict[tuple[str, int], int] = {}
    repeats: list[tuple[int, int, Message]] = []
    for index, msg in enumerate(transport.messages):
        key = (msg.device, msg.seq)
        if key in first:
            repeats.append((first[key], index, msg))
        else:
            first[key] = index
    assert len(repeats) == ledger.redelivered > 10
    assert ledger.messages == 90 + ledger.redelivered
    for original_index, _, msg in repeats:
        original = transport.messages[original_index]
        assert msg.payload == original.payload and msg.ts_ms == original.ts_ms
        assert REDELIVER_DELAY_S == 1.0


def test_second_resolution_formats_index_fixes_by_ts() -> None:
    plan = Plan(devices=2, rate_hz=1.0, duration_s=3.0, mqtt_url="mqtt://x:1", format="owntracks")
    transport, ledger, _ = run_fleet(plan)
    assert {m.topic.rsplit("/", 1)[0] for m in transport.messages} == {"owntracks/" + plan.run_tag}
    for msg in transport.messages:
        body = json.loads(msg.payload)
        assert body["_type"] == "location" and body["tst"] * 1000 == msg.ts_ms
        assert ledger.seq_by_ts_s[(msg.device, body["tst"])] == msg.seq


def _parses(payload: bytes) -> bool:
    try:
        json.loads(payload)
    except ValueError:
        return False
    return True
