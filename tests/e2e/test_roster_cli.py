"""`outpost roster import` run as a subprocess against both stores, as an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from store import access, duty
from store.engine import open_engine
from tests.support.duty import seed
from tests.support.services import REPO

CLI = [sys.executable, "-m", "outpost.cli"]
HEADER = "date,shift,start,end,unit_id,grid_id\n"
ROSTER = HEADER + "\n".join(
    [
        "2026-12-01,day,07:00,15:00,p1,police-1",
        "2026-12-01,day,07:00,15:00,a1,community-1",
        "2026-12-01,night,22:00,06:00,p2,police-1",
        "2026-12-02,day,07:00,15:00,p1,police-1",
        "2026-12-02,day,07:00,15:00,p2,police-2",
    ]
)


def _run(store_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
    env.update(PYTHONPATH=str(REPO), OUTPOST_DATABASE_URL=store_url)
    return subprocess.run(
        [*CLI, "roster", "import", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def _seeded(store_url: str) -> None:
    engine = open_engine(store_url, pool_size=1)
    try:
        seed(engine, datetime(2026, 11, 1, tzinfo=UTC))
    finally:
        engine.dispose()


def _count(store_url: str, table: str) -> int:
    engine = open_engine(store_url, pool_size=1)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


def test_a_roster_imports_in_the_station_time_zone_and_reimport_adds_nothing(
    store_url: str, tmp_path: Path
) -> None:
    _seeded(store_url)
    path = tmp_path / "december.csv"
    path.write_text(ROSTER, encoding="utf-8")
    first = _run(store_url, tmp_path, str(path), "--timezone", "America/Los_Angeles")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == (
        "roster december.csv (times in America/Los_Angeles): 5 assignments created, 0 already stored, "
        "3 shifts created"
    )
    again = _run(store_url, tmp_path, str(path), "--timezone", "America/Los_Angeles")
    assert (
        again.returncode == 0 and "0 assignments created, 5 already stored, 0 shifts created" in again.stdout
    )
    assert (_count(store_url, "assignments"), _count(store_url, "shifts")) == (5, 3)

    engine = open_engine(store_url, pool_size=1)
    try:
        # 23:00 PST on 1 December is 07:00 UTC on the 2nd: p2 holds police-1 on the night shift.
        (night,) = duty.assignments_at(engine, datetime(2026, 12, 2, 7, tzinfo=UTC), grid_id="police-1")
        assert night.unit_id == "p2" and night.created_by == "cli:roster:december.csv"
        assert [e.action for e in access.read_audit(engine)] == ["import_roster"]
    finally:
        engine.dispose()


def test_conflicts_are_all_printed_with_line_numbers_and_nothing_is_imported(
    store_url: str, tmp_path: Path
) -> None:
    _seeded(store_url)
    path = tmp_path / "bad.csv"
    bad = (
        ROSTER
        + "\n"
        + "\n".join(
            [
                "2026-12-02,late,14:00,18:00,p2,police-1",  # 7: police-1 held (line 5), p2 busy (line 6)
                "2026-12-03,day,07:00,15:00,v1,police-1",  # 8: a vehicle
                "2026-12-03,day,07:00,15:00,a1,police-2",  # 9: an auxiliary on a police grid
                "2026-12-04,day,07:00,25:00,p1,police-1",  # 10: bad time
            ]
        )
    )
    path.write_text(bad, encoding="utf-8")
    result = _run(store_url, tmp_path, str(path))
    assert result.returncode == 2, result.stdout
    assert "Traceback" not in result.stderr
    # What the command says (the log lines of the migration aside).
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith(("bad.csv", "outpost roster"))]
    assert lines[0] == "bad.csv line 7: grid police-1 is held then by unit p1 (line 5)"
    assert lines[1] == "bad.csv line 7: unit p2 holds grid police-2 then (line 6)"
    assert lines[2].startswith("bad.csv line 8: grid_id: police grid police-1 takes a police officer")
    assert lines[3].startswith("bad.csv line 9: grid_id: police grid police-2 takes a police officer")
    assert lines[4].startswith("bad.csv line 10: end: must be HH:MM")
    assert lines[5:] == ["outpost roster import: 5 problems in bad.csv; nothing was imported"]
    assert result.stderr.strip().splitlines()[-1] == lines[5]
    assert _count(store_url, "assignments") == _count(store_url, "shifts") == 0


def test_errors_end_in_one_line_with_exit_2(store_url: str, tmp_path: Path) -> None:
    for args, words in (
        ([str(tmp_path / "nowhere.csv")], "cannot read"),
        ([str(tmp_path / "r.csv"), "--timezone", "Mars/Olympus"], "unknown time zone 'Mars/Olympus'"),
    ):
        (tmp_path / "r.csv").write_text(ROSTER, encoding="utf-8")
        result = _run(store_url, tmp_path, *args)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        (last,) = result.stderr.strip().splitlines()
        assert words in last and last.endswith("nothing was imported")
    (tmp_path / "latin.csv").write_bytes(
        HEADER.encode() + "2026-12-01,día,07:00,15:00,p1,police-1\n".encode("latin-1")
    )
    result = _run(store_url, tmp_path, str(tmp_path / "latin.csv"))
    assert result.returncode == 2 and "is not UTF-8 text" in result.stderr
