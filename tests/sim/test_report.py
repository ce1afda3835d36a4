"""A whole run against a real broker (no Outpost behind it): delivery, the JSON report, the chart, /proc."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from sim.loadtest import runner
from sim.loadtest.chart import write_chart
from sim.loadtest.cli import build_parser, run_loadtest
from sim.loadtest.metrics import Recorder
from sim.loadtest.plan import Plan, PlanError
from sim.loadtest.procstats import listening_pid, read_sample
from sim.loadtest.report import build_report, render_summary, write_json
from tests.support.services import Mosquitto


async def test_a_run_against_a_broker_reports_delivery_json_and_chart(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    plan = Plan(
        devices=20,
        rate_hz=5.0,
        duration_s=2.0,
        mqtt_url=mosquitto.url,
        bad_share=0.1,
        redeliver_share=0.1,
        connections=2,
        outpost_pids=(mosquitto.proc.pid,) if mosquitto.proc else (),
    )
    out = io.StringIO()
    result = await runner.run(plan, None, out, runner.Tools(watch_interval_s=0))
    report = build_report(result)
    assert report["sent"] == 200 + report["redelivered"]
    assert report["sent_valid"] + report["injected_total"] == 200
    assert report["injected"] == {"future": 5, "invalid_json": 10, "lat_out_of_range": 5}
    assert report["delivery"]["acked"] == report["delivery"]["published"] == report["sent"]
    assert report["oracle"] == "not checked (no --db-url)" and report["passed"] is None
    assert report["timeline"]["sent_per_s"][:2] == [100, 100]
    assert report["processes"]["outpost"]["available"]  # here: the broker's pid, read from /proc
    assert report["processes"]["loadtest"]["rss_mb_end"] > 10
    assert "sent 0" in out.getvalue()  # progress was printed while it ran

    write_json(report, tmp_path / "lt.json")
    assert json.loads((tmp_path / "lt.json").read_text())["run_id"] == plan.run_id
    write_chart(report, tmp_path / "lt.png")
    assert (tmp_path / "lt.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = render_summary(report)
    assert "oracle: not checked" in summary and f"load test {plan.run_id}" in summary


def test_plans_are_bounded() -> None:
    ok = Plan(devices=10, rate_hz=1.0, duration_s=10.0, mqtt_url="mqtt://127.0.0.1:1883")
    ok.check()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"devices": 0}, "--devices"),
        ({"duration_s": 7200.0}, "--duration"),
        ({"devices": 100_000, "rate_hz": 100.0, "duration_s": 3600.0}, "exceeds"),
        ({"format": "owntracks", "rate_hz": 2.0}, "--rate must be <= 1"),
        ({"mqtt_url": ""}, "needs --mqtt-url"),
        ({"dispatch_rate_qps": 10.0}, "need --http-url"),
        ({"bad_share": 1.0}, "--bad-share"),
    ]
    for bad, message in cases:
        with pytest.raises(PlanError, match=message):
            dataclasses.replace(ok, **bad).check()


def test_hdr_summary_and_per_second_percentiles() -> None:
    rec = Recorder(start_s=100.0)
    for i in range(1, 1001):
        rec.latency("x", 100.0 + (i % 2), float(i))  # 1..1000 ms over two seconds
    s = rec.summary("x")
    assert s["count"] == 1000
    assert s["p50_ms"] == pytest.approx(500, rel=0.002) and s["p99_ms"] == pytest.approx(990, rel=0.002)
    assert s["max_ms"] == pytest.approx(1000, rel=0.002) and s["hdr"]
    assert rec.seconds == 2
    p50 = rec.percentile_series("x", 50, 3)
    assert p50[0] == pytest.approx(501) and p50[1] == pytest.approx(500) and p50[2] is None


def test_proc_readings_of_this_process_and_its_listening_socket() -> None:
    sample = read_sample(os.getpid(), 0.0)
    assert sample is not None and sample.cpu_s > 0 and sample.rss_bytes > 1 << 20
    assert read_sample(2**22 + 12345, 0.0) is None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert listening_pid(s.getsockname()[1]) == os.getpid()


async def test_the_command_line_writes_json_and_chart(mosquitto: Mosquitto, tmp_path: Path) -> None:
    args = build_parser().parse_args([
        "--devices", "5", "--rate", "2", "--duration", "1", "--mqtt-url", mosquitto.url, "--qos", "0",
        "--format", "owntracks", "--rate", "1", "--json", str(tmp_path / "r.json"),
        "--chart", str(tmp_path / "r.png"), "--watch-interval-ms", "0",
    ])  # fmt: skip
    assert await run_loadtest(args) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["sent"] == 5 and report["plan"]["format"] == "owntracks" and report["delivery"]["qos"] == 0
    assert (tmp_path / "r.png").stat().st_size > 10_000


async def test_the_command_line_refuses_an_unbounded_plan(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["--devices", "100000", "--rate", "100", "--duration", "3600"])
    assert await run_loadtest(args) == 2
    assert "exceeds" in capsys.readouterr().err
