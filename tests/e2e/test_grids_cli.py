"""`outpost grids import` run as a subprocess against both stores, as an operator would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from sim.simulate.build_demo_data import DISTRICTS_PATH, NEIGHBORHOODS_PATH
from store.engine import open_engine
from tests.support.services import REPO

CLI = [sys.executable, "-m", "outpost.cli"]


def _run(store_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
    env.update(PYTHONPATH=str(REPO), OUTPOST_DATABASE_URL=store_url)
    return subprocess.run(
        [*CLI, "grids", "import", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def _count(store_url: str) -> int:
    engine = open_engine(store_url, pool_size=1)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM grids")).scalar_one())
    finally:
        engine.dispose()


def test_the_sf_grids_import_and_reimport(store_url: str, tmp_path: Path) -> None:
    police = _run(
        store_url, tmp_path, str(DISTRICTS_PATH), "--level", "police", "--name-property", "district"
    )
    assert police.returncode == 0, police.stderr
    assert (
        "police grids from sf_police_districts.geojson: 10 created, 0 unchanged, 0 new versions"
        in police.stdout
    )
    args = [str(NEIGHBORHOODS_PATH), "--level", "community", "--name-property", "neighborhood"]
    community = _run(store_url, tmp_path, *args)
    assert community.returncode == 0, community.stderr
    lines = community.stdout.splitlines()
    assert (
        lines[0]
        == "community grids from sf_analysis_neighborhoods.geojson: 41 created, 0 unchanged, 0 new versions"
    )
    assert lines[1].startswith("9 community grids have < 80 % of their area")
    assert lines[2] == "  community-presidio (Presidio): 0.4% in police-northern; next police-richmond 0.2%"
    assert any(
        line.startswith("  community-russian-hill (Russian Hill): 69.3% in police-central") for line in lines
    )
    again = _run(store_url, tmp_path, *args)
    assert again.returncode == 0 and "0 created, 41 unchanged, 0 new versions" in again.stdout
    assert _count(store_url) == 51


def _error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stderr.strip().splitlines()[-1]


def test_errors_end_in_one_line_with_exit_2_and_nothing_imported(store_url: str, tmp_path: Path) -> None:
    missing = _run(store_url, tmp_path, str(tmp_path / "nowhere.geojson"), "--level", "police")
    assert "cannot read" in _error_line(missing) and "No such file" in _error_line(missing)
    (tmp_path / "bad.json").write_text("{ not json", encoding="utf-8")
    assert "bad.json is not JSON" in _error_line(
        _run(store_url, tmp_path, str(tmp_path / "bad.json"), "--level", "police")
    )

    doc = json.loads(DISTRICTS_PATH.read_text(encoding="utf-8"))
    doc["features"][6]["geometry"] = {
        "type": "Polygon",
        "coordinates": [[[37.7, -122.4], [37.8, -122.4], [37.8, -122.3], [37.7, -122.4]]],
    }
    name = doc["features"][6]["properties"]["district"]
    (tmp_path / "swapped.geojson").write_text(json.dumps(doc), encoding="utf-8")
    line = _error_line(
        _run(
            store_url,
            tmp_path,
            str(tmp_path / "swapped.geojson"),
            "--level",
            "police",
            "--name-property",
            "district",
        )
    )
    assert line.startswith(
        f"outpost grids import: feature 6 ({name}): geometry position 0 of ring 0 of polygon 0"
    )
    assert "looks like lat, lon" in line and line.endswith("nothing was imported")

    no_name = _run(store_url, tmp_path, str(DISTRICTS_PATH), "--level", "police")
    assert "feature 0: no property 'name' for its name (it has: company, district)" in _error_line(no_name)

    ok = _run(store_url, tmp_path, str(DISTRICTS_PATH), "--level", "police", "--name-property", "district")
    assert ok.returncode == 0
    doc = json.loads(NEIGHBORHOODS_PATH.read_text(encoding="utf-8"))
    for feature in doc["features"]:
        feature["properties"]["pd"] = "Atlantis"
    (tmp_path / "unknown_parent.geojson").write_text(json.dumps(doc), encoding="utf-8")
    args = ["--level", "community", "--name-property", "neighborhood", "--parent-property", "pd"]
    line = _error_line(_run(store_url, tmp_path, str(tmp_path / "unknown_parent.geojson"), *args))
    assert "feature 0 (" in line and "its parent 'Atlantis' is not a current police grid" in line
    assert _count(store_url) == 10
