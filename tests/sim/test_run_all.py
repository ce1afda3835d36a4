"""benchmarks/run_all.py: each benchmark in its own process, figures collected, timeouts enforced."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

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
