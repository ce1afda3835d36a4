"""Run the whole benchmark suite, one subprocess per benchmark, and write the results.

    .venv/bin/python benchmarks/run_all.py [--only NAME ...] [--skip NAME ...] [--timeout-s 600] [--quick]

Runs, in this order, whichever of these exist: bench_index.py, bench_decode.py, bench_copy.py,
bench_ingest.py, bench_http_nearest.py, bench_http_designs.py, bench_freshness.py; then any other
benchmarks/bench_*.py. Each prints its figures and its ratio to a baseline measured in the same run; its
output is streamed here and kept.

Writes into benchmarks/results/: latest.json (machine, per benchmark: status, exit code, seconds, output, and
the figures it reported), latest.md (a table for the README, then each output), figures.json (every figure
in one stable schema, benchmarks/figures.py: name, value, unit, baseline_name, baseline_value, ratio, goal,
met; each tagged with its benchmark) and the comparison charts (benchmarks/charts.py: PNG).

A benchmark reports machine-readable figures, optionally, by writing a JSON object to the file named by the
environment variable OUTPOST_BENCH_RESULT, or by printing it as its last JSON line on stdout. Exit status 3
means "skipped: a prerequisite is missing" (its output says which). OUTPOST_BENCH_QUICK=1 (--quick) asks for a
smaller, faster run. This script exits 1 if any benchmark failed or timed out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # benchmarks.figures, benchmarks.charts, when run as a script
ORDER = (
    "bench_index",
    "bench_decode",
    "bench_copy",
    "bench_ingest",
    "bench_http_nearest",
    "bench_http_designs",
    "bench_freshness",
)
EXIT_SKIPPED = 3
_KEEP_OUTPUT_CHARS = 20_000


def discover(only: list[str], skip: list[str]) -> tuple[list[Path], list[str]]:
    """The benchmark scripts to run, in suite order, and the expected ones that do not exist yet."""
    found = {p.stem: p for p in HERE.glob("bench_*.py")}
    names = [n for n in ORDER if n in found] + sorted(n for n in found if n not in ORDER)
    missing = [n for n in ORDER if n not in found]
    wanted = [_stem(n) for n in only]
    names = [n for n in names if (not wanted or n in wanted) and n not in {_stem(s) for s in skip}]
    return [found[n] for n in names], [n for n in missing if not wanted or n in wanted]


def _stem(name: str) -> str:
    name = Path(name).stem
    return name if name.startswith("bench_") else f"bench_{name}"


def run_one(script: Path, timeout_s: float, quick: bool, extra: Sequence[str] = ()) -> dict[str, Any]:
    """Run one benchmark (with `extra` arguments) in its own process group, streaming its output; collect
    what it reports."""
    with tempfile.TemporaryDirectory(prefix="outpost-bench-") as tmp:
        result_file = Path(tmp) / "result.json"
        env = {**os.environ, "OUTPOST_BENCH_RESULT": str(result_file), "PYTHONUNBUFFERED": "1"}
        if quick:
            env["OUTPOST_BENCH_QUICK"] = "1"
        title = shlex.join([script.name, *extra])
        print(f"\n=== {title} " + "=" * max(0, 70 - len(title)), flush=True)
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, str(script), *extra],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            preexec_fn=_interruptible,
        )
        lines, timed_out = _stream(proc, started + timeout_s)
        seconds = time.monotonic() - started
        figures = _figures(result_file, lines)
    status = "timeout" if timed_out else _status(proc.returncode)
    print(f"--- {script.name}: {status} in {seconds:.0f} s", flush=True)
    output = "".join(lines)
    return {
        "name": script.stem,
        "args": list(extra),
        "status": status,
        "exit_code": proc.returncode,
        "seconds": round(seconds, 1),
        "figures": figures,
        "headline": _headline(lines),
        "output": output[-_KEEP_OUTPUT_CHARS:],
    }


def _interruptible() -> None:
    """In the child: SIGINT back to its default, so Python turns it into KeyboardInterrupt. A shell starts
    background jobs with SIGINT ignored, and an ignored signal stays ignored across exec: run from
    `nohup ... &`, a benchmark out of time would not hear the polite stop and be killed 45 s later."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _stream(proc: subprocess.Popen[str], deadline: float) -> tuple[list[str], bool]:
    assert proc.stdout is not None
    lines: list[str] = []
    os.set_blocking(proc.stdout.fileno(), False)
    while True:
        line = proc.stdout.readline()
        if line:
            lines.append(line)
            print("  " + line, end="", flush=True)
            continue
        if proc.poll() is not None:
            lines.extend(proc.stdout.readlines())
            return lines, False
        if time.monotonic() > deadline:
            _stop(proc)
            lines.extend(_drain_output(proc))
            return lines, True
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[str]) -> None:
    """Stop a benchmark that ran out of time, letting it clean up first.

    SIGINT becomes KeyboardInterrupt in Python, so the benchmark's `finally` blocks stop the servers it
    started (PostgreSQL daemonises out of reach of a signal to the group). Then SIGTERM, then SIGKILL, to
    the whole process group.
    """
    for sig, grace_s in ((signal.SIGINT, 45.0), (signal.SIGTERM, 15.0), (signal.SIGKILL, 15.0)):
        with contextlib.suppress(ProcessLookupError):
            if sig == signal.SIGINT:
                proc.send_signal(sig)
            else:
                os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace_s)
            break
        except subprocess.TimeoutExpired:
            continue
    # Whatever the benchmark left in its own process group (the group is its alone: start_new_session).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _drain_output(proc: subprocess.Popen[str]) -> list[str]:
    assert proc.stdout is not None
    with contextlib.suppress(OSError, ValueError):
        return proc.stdout.readlines()
    return []


def _status(code: int | None) -> str:
    if code == 0:
        return "ok"
    if code == EXIT_SKIPPED:
        return "skipped"
    return "failed"


def _figures(result_file: Path, lines: list[str]) -> dict[str, Any] | None:
    if result_file.exists():
        try:
            data = json.loads(result_file.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {"value": data}
        except ValueError:
            pass
    for line in reversed(lines):
        text = line.strip()
        if text.startswith("{") and text.endswith("}"):
            try:
                data = json.loads(text)
            except ValueError:
                continue
            if isinstance(data, dict):
                return data
    return None


def _headline(lines: list[str]) -> str:
    """The line a reader wants first: the last one mentioning a ratio, else the last non-empty line."""
    text = [" ".join(ln.split()) for ln in lines if ln.strip() and not ln.strip().startswith("{")]
    for line in reversed(text):
        if "ratio" in line.lower():
            return line[:200]
    return text[-1][:200] if text else ""


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    info: dict[str, Any] = {
        "hostname": platform.node(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": _mem_gb(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": _version(["pg_config", "--version"]),
        "mosquitto": _version(["mosquitto", "-h"]),
        "commit": _version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
    }
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _version(cmd: list[str]) -> str | None:
    exe = shutil.which(cmd[0]) or (f"/usr/sbin/{cmd[0]}" if Path(f"/usr/sbin/{cmd[0]}").exists() else None)
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else None


def markdown(report: dict[str, Any]) -> str:
    """The results as a markdown table (for the README) followed by each benchmark's output."""
    m = report["machine"]
    lines = [
        f"# Benchmark results ({report['finished_at'][:19]}Z, {report['total_seconds']:.0f} s in total)",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB RAM, Linux {m['kernel']}, "
        f"Python {m['python']}, {m['postgresql'] or 'no PostgreSQL'}, {m['mosquitto'] or 'no Mosquitto'}, "
        f"commit {m['commit']}. Broker, database, Outpost and the load generator share this machine.",
        "",
        "| benchmark | status | time (s) | measured (UTC, commit) | headline |",
        "|---|---|---:|---|---|",
    ]
    for b in report["benchmarks"]:
        headline = b["headline"].replace("|", "\\|")
        when = f"{str(b.get('measured_at') or report['finished_at'])[:16]}, {b.get('commit') or m['commit']}"
        name = shlex.join([b["name"], *b.get("args", ())]).replace("|", "\\|")
        lines.append(f"| {name} | {b['status']} | {b['seconds']:.0f} | {when} | {headline} |")
    for name in report["missing"]:
        lines.append(f"| {name} | not written yet | | | |")
    lines += figures_table(all_figures(report)["figures"])
    for b in report["benchmarks"]:
        lines += ["", f"## {b['name']} ({b['status']})", "", "```", b["output"].rstrip(), "```"]
    return "\n".join(lines) + "\n"


def figures_table(figures: list[dict[str, Any]]) -> list[str]:
    """The figures (figures.json) as markdown table lines; none when no benchmark reported any."""
    if not figures:
        return []
    num = lambda v: "" if v is None else f"{v:,.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    met = {True: "met", False: "**not met**", None: ""}
    lines = ["", "## Figures", "", "| figure | value | unit | baseline | baseline value | ratio | goal | |",
             "|---|---:|---|---|---:|---:|---|---|"]  # fmt: skip
    for f in figures:
        lines.append(
            f"| {f['name']} | {num(f['value'])} | {f['unit']} | {f['baseline_name'] or ''} | "
            f"{num(f['baseline_value'])} | {num(f['ratio'])} | {f['goal'] or ''} | {met[f['met']]} |"
        )
    return lines


def merged(report: dict[str, Any], previous_path: Path) -> dict[str, Any]:
    """`report` with the previous run's entries for every benchmark it did not run, in suite order; each
    entry carries the date and commit it was measured at (`measured_at`, `commit`)."""
    for b in report["benchmarks"]:
        b.setdefault("measured_at", report["finished_at"])
        b.setdefault("commit", report["machine"]["commit"])
    try:
        previous = json.loads(previous_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return report
    ran = {b["name"] for b in report["benchmarks"]}
    kept = [
        {"measured_at": previous.get("finished_at"), "commit": previous.get("machine", {}).get("commit"), **b}
        for b in previous.get("benchmarks", [])
        if b.get("name") not in ran
    ]
    rank = {name: i for i, name in enumerate(ORDER)}
    every = sorted(kept + report["benchmarks"], key=lambda b: (rank.get(b["name"], len(ORDER)), b["name"]))
    return {**report, "benchmarks": every, "missing": [m for m in report["missing"] if m not in ran]}


def all_figures(report: dict[str, Any]) -> dict[str, Any]:
    """Every figure of the run in the suite's schema, each tagged with its benchmark (figures.json)."""
    from benchmarks.figures import derive

    rows = [
        {"benchmark": b["name"], **f} for b in report["benchmarks"] for f in derive(b["name"], b["figures"])
    ]
    return {
        "finished_at": report["finished_at"],
        "quick": report.get("quick"),
        "machine": report["machine"],
        "figures": rows,
    }


def machine_line(m: dict[str, Any]) -> str:
    """The machine in one line, for the charts."""
    return (
        f"{m['cpu']}, {m['cores']} cores (shared), {m['memory_gb']} GB, "
        f"{m['postgresql'] or 'no PostgreSQL'}, "
        f"commit {m['commit']}"
    )


def write_results(report: dict[str, Any], folder: Path) -> list[Path]:
    """latest.json, latest.md, figures.json and the charts into `folder`; the files written."""
    from benchmarks.charts import draw

    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / "latest.json", folder / "latest.md", folder / "figures.json"]
    files[0].write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    files[1].write_text(markdown(report), encoding="utf-8")
    files[2].write_text(json.dumps(all_figures(report), indent=2) + "\n", encoding="utf-8")
    try:
        files += draw(report["benchmarks"], folder, machine_line(report["machine"]))
    except ImportError as exc:  # matplotlib is in the `sim` extra
        print(f"charts not drawn: {exc}")
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", nargs="*", default=[], help="run only these (e.g. decode freshness)")
    parser.add_argument("--skip", nargs="*", default=[], help="do not run these")
    parser.add_argument("--timeout-s", type=float, default=600.0, help="per benchmark (default 600)")
    parser.add_argument("--quick", action="store_true", help="ask each benchmark for a smaller run")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for latest.json and latest.md")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the previous latest.json's entries for the benchmarks not run now (each keeps its date)",
    )
    parser.add_argument(
        "--bench-args",
        type=shlex.split,
        default=[],
        help="arguments for each benchmark run, e.g. --only http_designs --bench-args '--units 10000,100000'",
    )
    args = parser.parse_args()
    scripts, missing = discover(args.only, args.skip)
    started = time.monotonic()
    started_at = datetime.now(UTC).isoformat()
    results = [run_one(s, args.timeout_s, args.quick, args.bench_args) for s in scripts]
    report = {
        "started_at": started_at,
        "finished_at": datetime.now(UTC).isoformat(),
        "total_seconds": round(time.monotonic() - started, 1),
        "quick": args.quick,
        "machine": machine(),
        "benchmarks": results,
        "missing": missing,
    }
    if args.merge:
        report = merged(report, args.results / "latest.json")
    files = write_results(report, args.results)
    absent = ", ".join(missing) or "none"
    print(f"\n{len(results)} benchmarks in {report['total_seconds']:.0f} s; not written yet: {absent}")
    for b in results:
        print(f"  {b['name']:<22} {b['status']:<8} {b['seconds']:6.0f} s  {b['headline']}")
    print("results: " + ", ".join(str(f) for f in files))
    return 1 if any(b["status"] in ("failed", "timeout") for b in results) else 0


if __name__ == "__main__":
    sys.exit(main())
