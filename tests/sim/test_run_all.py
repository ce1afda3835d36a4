"""benchmarks/run_all.py: each benchmark in its own process, figures collected, timeouts enforced; a
benchmark that measured nothing stops instead of printing ratios."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from benchmarks.figures import measured
from tests.support.services import REPO


def run_all() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_all", REPO / "benchmarks" / "run_all.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_all"] = module
    spec.loader.exec_module(module)
    return module


def write(path: Path, body: str) -> Path:
    path.write_text("import json, os, sys, time\n" + body, encoding="utf-8")
    return path


def test_figures_from_the_result_file_or_the_last_json_line(tmp_path: Path) -> None:
    ra = run_all()
    by_file = write(tmp_path / "bench_a.py", (
        "print('x  12.0  ratio 0.8')\n"
        "open(os.environ['OUTPOST_BENCH_RESULT'], 'w').write(json.dumps({'fixes_per_s': 12000}))\n"
    ))  # fmt: skip
    by_line = write(tmp_path / "bench_b.py", "print('table'); print(json.dumps({'p99_ms': 4.5}))\n")
    skipped = write(tmp_path / "bench_c.py", "print('SKIPPED: no broker'); sys.exit(3)\n")
    a, b, c = (ra.run_one(p, timeout_s=60, quick=True) for p in (by_file, by_line, skipped))
    assert (a["status"], a["figures"], a["headline"]) == ("ok", {"fixes_per_s": 12000}, "x 12.0 ratio 0.8")
    assert (b["status"], b["figures"]) == ("ok", {"p99_ms": 4.5})
    assert (c["status"], c["exit_code"], c["figures"]) == ("skipped", 3, None)


def test_a_benchmark_over_its_time_is_stopped_and_reported(tmp_path: Path) -> None:
    ra = run_all()
    slow = write(tmp_path / "bench_slow.py", "print('started', flush=True); time.sleep(60)\n")
    result = ra.run_one(slow, timeout_s=1.0, quick=False)
    assert result["status"] == "timeout" and result["seconds"] < 30
    assert "started" in result["output"]
    md = ra.markdown(
        {
            "finished_at": "2026-01-01T00:00:00",
            "total_seconds": 1.0,
            "machine": ra.machine(),
            "benchmarks": [result],
            "missing": ["bench_index"],
        }
    )
    assert "| bench_slow | timeout |" in md and "| bench_index | not written yet |" in md


def test_every_figure_lands_in_one_schema_and_the_charts_are_drawn(tmp_path: Path) -> None:
    ra = run_all()
    runs = [
        {"design": d, "units": u, "load": ld, "rps": rps, "p50_ms": 1.0, "p99_ms": p99, "p999_ms": p99 * 2}
        for d, rps, p99 in (("outpost", 3000.0, 4.0), ("postgis", 1000.0, 8.0), ("redis", 1500.0, 2.0))
        for u in (10_000, 100_000)
        for ld in ("c1", "c16", "o1000")
    ]
    metric = {"name": "x", "value": 3.0, "unit": "requests/s", "baseline_name": "postgis",
              "baseline_value": 1.0, "ratio": 3.0, "goal": "ratio >= 3", "met": True}  # fmt: skip
    reports = {
        "bench_http_designs": f"json.dumps({{'runs': {runs!r}, 'metrics': [{metric!r}]}})",
        "bench_freshness": "json.dumps({'visible': {'p99_ms': 120.0}, 'broker_floor': {'p99_ms': 3.0}})",
        "bench_decode": "'no figures'",
    }
    scripts = [write(tmp_path / f"{name}.py", f"print({body})\n") for name, body in reports.items()]
    results = [ra.run_one(p, timeout_s=60, quick=True) for p in scripts]
    report = {
        "started_at": "2026-01-01T00:00:00",
        "finished_at": "2026-01-01T00:00:01",
        "total_seconds": 1.0,
        "quick": True,
        "machine": ra.machine(),
        "benchmarks": results,
        "missing": [],
    }
    files = ra.write_results(report, tmp_path / "results")
    figures = json.loads((tmp_path / "results" / "figures.json").read_text())["figures"]
    keys = {"benchmark", "name", "value", "unit", "baseline_name", "baseline_value", "ratio", "goal", "met"}
    assert all(set(f) == keys for f in figures)
    by_bench = {f["benchmark"]: f for f in figures}
    assert by_bench["bench_http_designs"]["met"] is True
    fresh = by_bench["bench_freshness"]
    assert (fresh["value"], fresh["baseline_value"], fresh["ratio"], fresh["met"]) == (
        120.0,
        3.0,
        40.0,
        False,
    )
    assert "bench_decode" not in by_bench
    names = {f.name for f in files}
    assert {"http_designs.png", "http_scaling.png"} <= names and "ingest.png" not in names
    assert all((tmp_path / "results" / n).read_bytes()[:4] == b"\x89PNG" for n in names if n.endswith(".png"))


def test_the_answer_checker_sees_a_wrong_nearest_unit_a_busy_one_and_a_short_answer() -> None:
    from benchmarks.fleet_stream import Fleet, LoggedFixes
    from benchmarks.loadgen import Records
    from benchmarks.truth import _geodesic_m, check

    fleet = Fleet.generate(2_000, seed=3)
    empty = LoggedFixes(*(np.empty(0, dtype=d) for d in (np.int64, np.int64, np.float64, np.float64)))
    lon, lat = -122.43, 37.76
    avail = np.nonzero(fleet.status_codes == 0)[0]
    busy = int(np.nonzero(fleet.status_codes != 0)[0][0])
    dist = _geodesic_m(lon, lat, fleet.lons[avail], fleet.lats[avail])
    order = avail[np.argsort(dist)]
    right = [fleet.ids[i] for i in order[:5]]
    answers = {
        "": right,
        "order": [*right[:4], fleet.ids[order[50]]],
        "status": [*right[:4], fleet.ids[busy]],
        "short": right[:4],
    }
    for reason, ids in answers.items():
        d = list(_geodesic_m(lon, lat, fleet.lons[[fleet.ids.index(i) for i in ids]],
                             fleet.lats[[fleet.ids.index(i) for i in ids]]))  # fmt: skip
        records = Records([lon], [lat], [0], [10], [20], [200], [ids], [d])
        verdicts = check(fleet, empty, records, lag_s=0.5, k=5)
        assert (verdicts.checked, dict(verdicts.wrong)) == (1, {reason: 1} if reason else {})
    bad_distance = [
        float(x) + 50.0 for x in _geodesic_m(lon, lat, fleet.lons[order[:5]], fleet.lats[order[:5]])
    ]
    records = Records([lon], [lat], [0], [10], [20], [200], [right], [bad_distance])
    assert dict(check(fleet, empty, records, lag_s=0.5, k=5).wrong) == {"distance": 1}
    # The nearest unit moved 2.6 km away 5 ns before the request was sent: an answer naming it is right only
    # while that fix is younger than the allowed lag.
    moved = LoggedFixes(np.array([5]), order[:1].astype(np.int64), np.array([lon + 0.03]), np.array([lat]))
    records = Records(
        [lon], [lat], [0], [10], [20], [200], [right], [list(map(float, dist[np.argsort(dist)][:5]))]
    )
    assert dict(check(fleet, moved, records, lag_s=0.5, k=5).wrong) == {}
    assert dict(check(fleet, moved, records, lag_s=0.0, k=5).wrong) == {"distance": 1}  # the stale distance
    # With the unit's distance once moved, it is the order that is wrong.
    records.distances_m[0][0] = float(_geodesic_m(lon, lat, moved.lon, moved.lat)[0])
    assert dict(check(fleet, moved, records, lag_s=0.0, k=5).wrong) == {"order": 1}


def test_merge_keeps_the_benchmarks_not_run_with_their_date(tmp_path: Path) -> None:
    ra = run_all()
    previous = {
        "finished_at": "2026-01-01T00:00:00",
        "machine": {"commit": "abc1234"},
        "benchmarks": [{"name": "bench_ingest", "status": "ok"}, {"name": "bench_decode", "status": "ok"}],
    }
    (tmp_path / "latest.json").write_text(json.dumps(previous))
    now = {
        "finished_at": "2026-02-02T00:00:00",
        "machine": {"commit": "def5678"},
        "missing": ["bench_decode"],
        "benchmarks": [{"name": "bench_decode", "status": "failed"}],
    }
    report = ra.merged(now, tmp_path / "latest.json")
    assert [(b["name"], b["status"], b["commit"]) for b in report["benchmarks"]] == [
        ("bench_decode", "failed", "def5678"),
        ("bench_ingest", "ok", "abc1234"),
    ]
    assert report["missing"] == [] and report["benchmarks"][1]["measured_at"] == "2026-01-01T00:00:00"


@pytest.mark.parametrize("count", [0, 0.0, float("nan"), -1])
def test_a_benchmark_that_measured_nothing_stops_with_one_line(count: float) -> None:
    with pytest.raises(SystemExit) as stopped:
        measured("journal: records journaled", count)
    assert str(stopped.value).startswith("measured nothing: journal: records journaled = ")
    assert "\n" not in str(stopped.value)


def test_a_benchmark_that_measured_something_goes_on() -> None:
    measured("moves seen", 1)
