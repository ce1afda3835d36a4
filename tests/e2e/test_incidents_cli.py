"""`outpost incidents import` run as a subprocess against both stores: the shipped day and the shared week,
a re-import that adds nothing, bad rows listed by line with the good ones imported, other column names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from store.engine import open_engine
from tests.support.services import REPO

CLI = [sys.executable, "-m", "outpost.cli", "incidents", "import"]
DAY = REPO / "sim" / "data" / "sf_incidents_2008-05-30.csv.gz"


def _run(store_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
    env.update(PYTHONPATH=str(REPO), OUTPOST_DATABASE_URL=store_url)
    return subprocess.run([*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _counts(store_url: str) -> tuple[int, int]:
    engine = open_engine(store_url, pool_size=1)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT count(*), count(h3_cell) FROM incidents"
                    " WHERE source = 'import' AND state = 'closed'"
                )
            ).one()
            return int(row[0]), int(row[1])
    finally:
        engine.dispose()


def test_the_shipped_day_imports_once(store_url: str, tmp_path: Path) -> None:
    first = _run(store_url, tmp_path, str(DAY))
    assert first.returncode == 0, first.stderr
    assert "189 rows, 189 imported, 0 already present, 0 rejected" in first.stdout
    assert "importing [" in first.stderr and "189/189 rows" in first.stderr
    again = _run(store_url, tmp_path, str(DAY))
    assert again.returncode == 0 and "0 imported, 189 already present" in again.stdout
    assert _counts(store_url) == (189, 189)


def test_the_shared_week_after_the_day_adds_the_rest(
    sqlite_url: str, tmp_path: Path, shared_data: Path
) -> None:
    _run(sqlite_url, tmp_path, str(DAY))
    week = _run(sqlite_url, tmp_path, str(shared_data / "sf_police_incidents_2008-05-26_to_06-01.csv.gz"))
    assert week.returncode == 0, week.stderr
    assert "2779 rows, 2590 imported, 189 already present, 0 rejected" in week.stdout
    assert _counts(sqlite_url) == (2779, 2779)


def test_bad_rows_are_listed_and_the_good_ones_imported(sqlite_url: str, tmp_path: Path) -> None:
    csv_file = tmp_path / "reports.csv"
    csv_file.write_text(
        "Dates,Y,X,Category,Extra\n"
        "2008-05-30T07:01:00Z,37.7,-122.4,FRAUD,x\n"
        "nope,95,x,,x\n"
        "\n"
        "2008-05-30T07:01:00,37.7,-122.4,ASSAULT,x\n"
        '2008-05-30T08:00:00-07:00,37.71,-122.41,"LARCENY/THEFT",x\n'
    )
    columns = [
        "--column",
        "ts=Dates",
        "--column",
        "lat=Y",
        "--column",
        "lon=X",
        "--column",
        "category=Category",
    ]
    done = _run(sqlite_url, tmp_path, str(csv_file), *columns)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert (
        lines[0]
        == "line 3: ts 'nope' is not an ISO 8601 time; lat 95 is outside ±90; lon 'x' is not a number; "
        "category is empty"
    )
    assert lines[1] == "line 5: ts '2008-05-30T07:01:00' has no time zone (write Z for UTC)"
    assert lines[2].endswith("4 rows, 2 imported, 0 already present, 2 rejected")
    assert _counts(sqlite_url) == (2, 2)


def test_a_missing_column_stops_before_anything_is_written(sqlite_url: str, tmp_path: Path) -> None:
    csv_file = tmp_path / "reports.csv"
    csv_file.write_text("when,lat,lon,category\n2008-05-30T07:01:00Z,37.7,-122.4,FRAUD\n")
    done = _run(sqlite_url, tmp_path, str(csv_file))
    assert done.returncode == 2
    assert "no column 'ts_iso8601_utc' or 'ts' for ts" in done.stderr and "--column ts=HEADER" in done.stderr
    assert _counts(sqlite_url) == (0, 0)
