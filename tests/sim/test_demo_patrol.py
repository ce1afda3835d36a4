"""A short `outpost demo` run in process (embedded broker, SQLite in a temporary directory, free ports):
both levels of SF grids are loaded, units are assigned on a shift, the simulated officers check in over
MQTT on arriving in their grid and answer a roll call, and the summary line shows check-ins, out-of-grid
alerts, coverage gaps, device health and a finished roll call."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from outpost.demo import DemoOptions, run_demo
from outpost.settings import load_settings
from store import duty, grids
from store.engine import open_engine
from tests.support.services import free_port

pytestmark = pytest.mark.slow


async def test_a_short_demo_checks_in_and_finishes_a_roll_call(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    settings = load_settings(
        {
            "OUTPOST_DATABASE_URL": url,
            "OUTPOST_HTTP_PORT": str(free_port()),
            "OUTPOST_MQTT_LISTEN": f"127.0.0.1:{free_port()}",
            "OUTPOST_SPOOL_DIR": str(tmp_path / "spool"),
        }
    )
    # 45 s at 10x: a roll call every 8 s (4 s to answer), a unit into a dead spot every 10 s for 15 s.
    quick = DemoOptions(units=12, speedup=10.0, duration_s=45.0, rollcall_every_s=8.0)
    options = replace(quick, rollcall_deadline_s=4.0, dead_spot_every_s=10.0, dead_spot_s=15.0)
    lines: list[str] = []
    await asyncio.wait_for(
        run_demo(settings, options, given=("mqtt_listen", "http_port"), out=lines.append), 120
    )
    summaries = [line for line in lines if "check-ins" in line]
    assert summaries, lines
    last = summaries[-1]
    for part in ("out of grid", "coverage gaps", "device health"):
        assert part in last, last
    health = re.search(r"device health (\d+)", last)
    assert health is not None and int(health.group(1)) > 0, last  # a unit drove into a dead spot
    checkins = int(re.search(r"check-ins (\d+)", last).group(1))  # type: ignore[union-attr]
    assert checkins > 0, last
    rollcall = re.search(r"roll calls (\d+) \(last: ([^)]*)\)", last)
    assert rollcall is not None and int(rollcall.group(1)) >= 1, last
    assert "present" in rollcall.group(2) or "silent" in rollcall.group(2), last  # one closed
    engine = open_engine(url, pool_size=1)
    try:
        levels = {g.level for g in grids.list_grids(engine)}
        assert levels == {"police", "community"}
        assert duty.assignments_at(engine, datetime.now(UTC))  # the shift's, still on
    finally:
        engine.dispose()
