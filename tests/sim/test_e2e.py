"""The load test against a real `outpost run` (PostgreSQL, Mosquitto, ingest, the API): the oracle holds.

A short, small run with every kind of bad message and redeliveries mixed in: 0 lost, 0 duplicated, dead
letters exactly as injected. The negative control then removes and duplicates stored rows behind Outpost's
back and the same oracle must report them, so a pass means something.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from sim.loadtest import runner
from sim.loadtest.oracle import reconcile
from sim.loadtest.plan import Plan
from sim.loadtest.report import build_report, render_summary
from sim.loadtest.store import RunStore
from tests.sim.outpost_process import OutpostProcess, missing_commands
from tests.support.services import Mosquitto

pytestmark = pytest.mark.slow


@pytest.fixture
def outpost(pg_url: str, mosquitto: Mosquitto, tmp_path: Path) -> Iterator[OutpostProcess]:
    reason = missing_commands()
    if reason:
        pytest.skip(f"{reason}; the load test's end-to-end test drives `outpost run` from outside")
    process = OutpostProcess(pg_url, mosquitto.url, tmp_path).start()
    yield process
    process.close()


async def test_a_short_load_test_against_outpost_run_passes_the_oracle(
    outpost: OutpostProcess, mosquitto: Mosquitto, pg_url: str, pg_engine: Engine
) -> None:
    plan = Plan(
        devices=20,
        rate_hz=5.0,
        duration_s=4.0,
        mqtt_url=mosquitto.url,
        http_url=outpost.http_url,
        token=outpost.token,
        bad_share=0.05,
        redeliver_share=0.2,
        dispatch_rate_qps=10.0,
        incident_rate_per_s=0.5,
        probe_rate_hz=2.0,
        probe_devices=2,
        db_url=pg_url,
        outpost_pids=(outpost.pid,),
        drain_timeout_s=30.0,
    )
    result = await runner.run(plan, pg_engine, io.StringIO(), runner.Tools(watch_interval_s=0.05))
    report = build_report(result)
    print(render_summary(report))  # shown with -s: the figures of this small run
    context = f"{render_summary(report)}\n--- outpost log ---\n{outpost.log_tail()}"
    assert report["injected_total"] == 20, context
    assert report["lost"] == 0, context
    assert report["duplicated"] == 0 and report["unexpected_stored"] == 0 and not report["bad_stored"], (
        context
    )
    assert report["rejects_match"], context
    assert report["passed"], context
    assert report["redelivered"] > 0
    assert report["latency_ms"]["publish_to_stored"]["count"] == report["stored"], context
    assert report["api"]["nearest"]["ok"] > 0, context
    assert report["processes"]["outpost"]["available"], context

    # Negative control: the same oracle on the same ledger must see rows lost and duplicated behind its back.
    with pg_engine.begin() as conn:
        victims = conn.execute(
            text(
                "SELECT device_id, ts FROM fixes WHERE device_id LIKE :p AND seq IS NOT NULL "
                "ORDER BY ts LIMIT 3"
            ),
            {"p": plan.run_tag + "-d%"},
        ).all()
        for device_id, ts in victims:
            conn.execute(
                text("DELETE FROM fixes WHERE device_id = :d AND ts = :t"), {"d": device_id, "t": ts}
            )
        conn.execute(
            text(
                "INSERT INTO fixes (device_id, unit_id, ts, received_at, lon, lat, seq, flags) "
                "SELECT device_id, unit_id, ts + interval '3 ms', received_at, lon, lat, seq, flags "
                "FROM fixes WHERE device_id LIKE :p AND seq IS NOT NULL ORDER BY ts DESC LIMIT 2"
            ),
            {"p": plan.run_tag + "-d%"},
        )
    store = RunStore(pg_engine, plan.run_tag)
    verdict = reconcile(result.ledger, store.stored_fixes(), store.rejected_reasons())
    assert (verdict.lost, verdict.duplicated) == (3, 2)
    assert not verdict.passed
