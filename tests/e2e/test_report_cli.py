"""`outpost report monthly` run as a subprocess against both stores holding the hand-made November of
tests/store/test_reports.py: JSON with the hand-counted figures, the same bytes when asked again (stored),
CSV and a printable HTML file, --regenerate, and a future or malformed month refused naming --month; and
through `outpost run`, the routes and the automatic run."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from store import access, reports
from store.engine import open_engine
from tests.store.test_reports import seed_month
from tests.support.outpost_run import running_outpost
from tests.support.services import REPO

CLI = [sys.executable, "-m", "outpost.cli", "report", "monthly"]


def _run(store_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
    # The fixture's hand count takes a fix to stand for 600 s at most.
    env.update(PYTHONPATH=str(REPO), OUTPOST_DATABASE_URL=store_url, OUTPOST_MAX_FIX_AGE_S="600")
    return subprocess.run([*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_monthly_report_from_the_command_line(store_url: str, tmp_path: Path) -> None:
    engine = open_engine(store_url, pool_size=1)
    seed_month(engine)
    engine.dispose()
    first = _run(store_url, tmp_path, "--month", "2026-11")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert [o["unit_id"] for o in report["officers"]] == ["p1", "a1", "a2", "p2"]
    p1 = report["officers"][0]
    assert (p1["incidents_total"], p1["distance_m"], p1["duty_hours"], p1["inside_grid_share"]) == (
        3,
        222048.1,
        11.0,
        0.0758,
    )
    assert report["trigger"] == "cli" and report["complete"] is True
    again = _run(store_url, tmp_path, "--month", "2026-11")
    assert again.stdout == first.stdout  # stored: the same report, generated_at included

    as_csv = _run(store_url, tmp_path, "--month", "2026-11", "--format", "csv")
    assert as_csv.returncode == 0 and as_csv.stdout.splitlines()[1].startswith("1,p1,p1,police,1,1,1,0,3,")
    page = tmp_path / "november.html"
    written = _run(store_url, tmp_path, "--month", "2026-11", "--format", "html", "--output", str(page))
    assert written.returncode == 0 and "4 officers, written to" in written.stderr
    assert page.read_text().count("<svg") == 4

    regenerated = _run(store_url, tmp_path, "--month", "2026-11", "--regenerate")
    assert regenerated.returncode == 0
    assert json.loads(regenerated.stdout)["officers"] == report["officers"]

    future = _run(store_url, tmp_path, "--month", "2999-01")
    assert future.returncode == 2 and "--month 2999-01 has not begun" in future.stderr
    malformed = _run(store_url, tmp_path, "--month", "November")
    assert malformed.returncode == 2 and "--month must be a month as YYYY-MM" in malformed.stderr


async def test_outpost_run_serves_the_report_and_stores_the_month_before(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Through the composition root (`outpost run`): the routes are mounted and the automatic run, on the
    system clock, stores last month's report (the hour set to 0 so it is due whatever the time of day)."""
    engine = open_engine(sqlite_url, pool_size=1)
    reports.set_schedule(engine, enabled=True, hour=0, by="test", now=datetime.now(UTC))
    token = access.create_token(engine, role="dispatcher", name="t", now=datetime.now(UTC))[1]
    async with running_outpost(sqlite_url, tmp_path) as (running, _):
        request = urllib.request.Request(
            f"{running.http_url}/v1/reports/schedule", headers={"Authorization": f"Bearer {token}"}
        )
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(request, timeout=10).read())
        assert json.loads(body)["hour"] == 0
        for _ in range(200):  # the first check runs at start, in a thread: wait for it (no time asserted)
            if reports.stored_months(engine):
                break
            await asyncio.sleep(0.05)
    assert len(reports.stored_months(engine)) == 1
    engine.dispose()
