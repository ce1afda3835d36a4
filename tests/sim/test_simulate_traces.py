"""Replaying the Cabspotting taxi traces (research-use data, read from ../shared/data, never shipped)."""

from __future__ import annotations

import csv
import gzip
import json
from collections import defaultdict
from pathlib import Path

import pytest

from sim.simulate.run import SimClock, SimulateOptions, simulate
from sim.simulate.traces import TraceReplay
from tests.ingest.mqtt_collect import collect
from tests.sim.test_simulate_run import START_S, FakeTime
from tests.support.services import Mosquitto

ONE_HOUR = "sf_cabspotting_2008-05-30_1h_pdt1700.csv.gz"


def test_replay_yields_recorded_fixes_in_time_order(shared_data: Path) -> None:
    replay = TraceReplay(shared_data / ONE_HOUR, max_devices=25)
    samples = replay.due(3600.0)
    assert replay.next_due_s() is None  # the whole hour
    assert len(replay.devices) == 25
    times = [s.sim_s for s in samples]
    assert times[0] == 0.0 and times == sorted(times) and times[-1] <= 3600
    with gzip.open(shared_data / ONE_HOUR, "rt", encoding="utf-8") as f:
        expected = sum(1 for row in csv.DictReader(f) if f"cab-{row['object_id']}" in replay.devices.values())
    assert len(samples) == expected
    moving = [s for s in samples if s.speed_mps is not None]
    assert moving and all(s.speed_mps >= 0 for s in moving)  # type: ignore[operator]


def test_replay_reads_plain_csv_and_refuses_other_files(tmp_path: Path) -> None:
    plain = tmp_path / "t.csv"
    plain.write_text(
        "object_id,ts_iso8601_utc,lat,lon\na,2008-05-31T00:00:00Z,37.78,-122.41\n"
        "a,2008-05-31T00:01:00Z,37.79,-122.41\n",
        encoding="utf-8",
    )
    samples = TraceReplay(plain).due(1e9)
    assert [(s.device_id, s.sim_s) for s in samples] == [("cab-a", 0.0), ("cab-a", 60.0)]
    assert samples[1].speed_mps == pytest.approx(1112 / 60, rel=0.01) and samples[1].heading_deg == 0.0
    other = tmp_path / "x.csv"
    other.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="object_id"):
        TraceReplay(other)


async def test_simulate_replays_traces_time_shifted_and_accelerated(
    shared_data: Path, mosquitto: Mosquitto
) -> None:
    options = SimulateOptions(
        mqtt_url=mosquitto.url,
        source="traces",
        traces=shared_data / ONE_HOUR,
        devices=10,
        speedup=60.0,
        duration_s=30,
    )  # the first 30 min, in 30 s
    fake = FakeTime()
    async with collect(mosquitto.port, "outpost/v1/devices/+/fix") as got:
        stats = await simulate(options, clock=SimClock(60.0, wall=fake), sleep=fake.sleep)
        await got.wait_for(stats.fixes)
    assert stats.devices == 10 and stats.flushed and len(got.messages) == stats.fixes > 100
    per_device: dict[str, list[int]] = defaultdict(list)
    for topic, payload in got.messages:
        body = json.loads(payload)
        per_device[topic].append(body["ts"])
        assert 37.0 < body["lat"] < 38.5
    start_ms = START_S * 1000
    for ts in per_device.values():
        assert ts == sorted(ts) and start_ms <= ts[0] and ts[-1] <= start_ms + 30_000
