"""`simulate` publishing fleets to a real Mosquitto, received by a real subscriber; the CLI wiring."""

from __future__ import annotations

import argparse
import io
import itertools
import json
import math
from collections import defaultdict
from pathlib import Path

import pytest

from sim.simulate.cli import add_simulate_arguments, options_from_args
from sim.simulate.progress import ProgressLine
from sim.simulate.roads import shipped_graph
from sim.simulate.run import SimClock, SimulateOptions, SimulateStats, simulate
from tests.ingest.mqtt_collect import Collected, collect
from tests.support.services import Mosquitto

START_S = 1_900_000_000.0


class FakeTime:
    """A wall clock that only moves when the simulator sleeps: an hour of fleet runs in a moment."""

    def __init__(self) -> None:
        self.now_s = START_S

    def __call__(self) -> float:
        return self.now_s

    async def sleep(self, s: float) -> None:
        import asyncio

        self.now_s += s
        await asyncio.sleep(0)  # still let the publisher's socket work


async def run_fleet(
    mosquitto: Mosquitto, options: SimulateOptions, topic: str
) -> tuple[SimulateStats, Collected]:
    fake = FakeTime()
    async with collect(mosquitto.port, topic) as got:
        stats = await simulate(options, clock=SimClock(options.speedup, wall=fake), sleep=fake.sleep)
        await got.wait_for(stats.sent)
    return stats, got


def by_device(got: Collected) -> dict[str, list[dict[str, float]]]:
    out: dict[str, list[dict[str, float]]] = defaultdict(list)
    for topic, payload in got.messages:
        out[topic.split("/")[3]].append(json.loads(payload))
    return out


async def test_road_fleet_fixes_arrive_valid_and_in_sequence(mosquitto: Mosquitto) -> None:
    options = SimulateOptions(mqtt_url=mosquitto.url, source="roads", devices=4, rate_hz=0.2, duration_s=600)
    stats, got = await run_fleet(mosquitto, options, "outpost/v1/devices/+/fix")
    assert stats.flushed and stats.fixes == stats.sent == stats.acked == 4 * 120
    assert len(got.messages) == stats.fixes
    west, south, east, north = shipped_graph().bbox
    margin = 0.001  # GPS scatter of a few metres may step over the box of the road nodes
    fixes = by_device(got)
    assert set(fixes) == {f"patrol-{i:04d}" for i in range(1, 5)}
    for device, seq_fixes in fixes.items():
        assert (
            [f["seq"] for f in seq_fixes] == list(range(1, 121)) == list(range(1, stats.last_seq[device] + 1))
        )
        ts = [f["ts"] for f in seq_fixes]
        assert ts == sorted(ts) and ts[0] >= START_S * 1000 and ts[-1] <= (START_S + 600) * 1000
        for f in seq_fixes:
            assert all(math.isfinite(f[k]) for k in ("lat", "lon", "acc_m", "speed_mps", "heading_deg"))
            assert west - margin <= f["lon"] <= east + margin and south - margin <= f["lat"] <= north + margin


async def test_speedup_compresses_wall_time(mosquitto: Mosquitto) -> None:
    options = SimulateOptions(
        mqtt_url=mosquitto.url, source="walk", devices=3, rate_hz=1.0, duration_s=10, speedup=6.0
    )
    stats, got = await run_fleet(mosquitto, options, "outpost/v1/devices/+/fix")
    assert stats.fixes == 3 * 60  # 10 wall seconds at 6x = 60 simulated seconds at 1 Hz
    for seq_fixes in by_device(got).values():
        ts = [f["ts"] for f in seq_fixes]
        gaps = {b - a for a, b in itertools.pairwise(ts)}
        assert gaps <= {166, 167}  # one simulated second = 1/6 of a wall second, in ms


async def test_bad_messages_and_redeliveries_leave_the_valid_stream_gap_free(mosquitto: Mosquitto) -> None:
    options = SimulateOptions(
        mqtt_url=mosquitto.url,
        source="walk",
        devices=5,
        rate_hz=1.0,
        duration_s=60,
        bad_share=0.2,
        redeliver_share=0.1,
        seed=5,
    )
    stats, got = await run_fleet(mosquitto, options, "outpost/v1/devices/+/fix")
    bad = sum(v for k, v in stats.faults.items() if k != "redelivered")
    assert bad > 0 and stats.faults["redelivered"] > 0
    assert stats.sent == stats.fixes + bad + stats.faults["redelivered"] == len(got.messages)
    valid: dict[str, list[int]] = defaultdict(list)
    for topic, payload in got.messages:
        try:
            body = json.loads(payload, parse_constant=lambda c: float("nan"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if "seq" in body:
            valid[topic].append(body["seq"])
    for seqs in valid.values():
        assert sorted(set(seqs)) == list(range(1, 61))


async def test_owntracks_format(mosquitto: Mosquitto) -> None:
    options = SimulateOptions(
        mqtt_url=mosquitto.url, source="walk", devices=2, rate_hz=1.0, duration_s=5, fmt="owntracks"
    )
    stats, got = await run_fleet(mosquitto, options, "owntracks/#")
    assert len(got.messages) == stats.fixes == 10
    topic, payload = got.messages[0]
    body = json.loads(payload)
    assert topic.startswith("owntracks/outpost/walk-")
    assert body["_type"] == "location" and isinstance(body["tst"], int) and {"lat", "lon", "vel"} <= set(body)


async def test_simulate_with_the_real_clock(mosquitto: Mosquitto) -> None:
    options = SimulateOptions(mqtt_url=mosquitto.url, source="walk", devices=20, rate_hz=10.0, duration_s=0.3)
    async with collect(mosquitto.port, "outpost/#") as got:
        stats = await simulate(options)
        await got.wait_for(stats.fixes)
    assert stats.flushed and stats.fixes == 20 * 3 == len(got.messages)


def test_cli_arguments_map_to_options(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_simulate_arguments(parser)
    opts = options_from_args(
        parser.parse_args(
            [
                "--devices",
                "7",
                "--rate",
                "2",
                "--speedup",
                "5",
                "--format",
                "owntracks",
                "--mqtt-url",
                "mqtt://h:1",
            ]
        )
    )
    assert (opts.source, opts.devices, opts.rate_hz, opts.speedup, opts.fmt, opts.mqtt_url) == (
        "roads",
        7,
        2.0,
        5.0,
        "owntracks",
        "mqtt://h:1",
    )
    traces = tmp_path / "t.csv"
    traces.write_text("object_id,ts_iso8601_utc,lat,lon\n", encoding="utf-8")
    assert options_from_args(parser.parse_args(["--traces", str(traces)])).source == "traces"
    with pytest.raises(ValueError, match="needs --traces"):
        options_from_args(parser.parse_args(["--source", "traces"]))
    with pytest.raises(ValueError, match="not found"):
        options_from_args(parser.parse_args(["--traces", str(tmp_path / "missing.csv")]))


def test_progress_line_rewrites_one_line() -> None:
    t = [0.0]
    out = io.StringIO()
    out.isatty = lambda: True  # type: ignore[method-assign]
    line = ProgressLine(out, interval_s=1.0, monotonic=lambda: t[0])
    stats = SimulateStats(devices=3, sent=100, acked=90, elapsed_s=2)
    line(stats)  # too soon: nothing
    t[0] = 2.0
    line(stats)
    assert out.getvalue().startswith("\rsimulate: 3 devices | 100 sent | 90 acked | 50 msg/s")
    assert "\n" not in out.getvalue()
