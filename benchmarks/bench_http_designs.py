"""Nearest over HTTP: Outpost against the designs a user would pick instead, same load generator, same run.

    .venv/bin/python benchmarks/bench_http_designs.py [--units 100000] [--rate 5000] [--clients 1,4,16,64]
        [--open-rates 1000] [--scale-units 10000,1000000] [--scale-clients 16] [--seconds 8]
        [--designs outpost,split,postgis,redis] [--lag-s 0.5] [--lax-lag-s 5] [--profile FILE]

Three designs over the same fleet (benchmarks/designs.py): a real `outpost run` on PostgreSQL fed over MQTT
(or, with --designs split, one `outpost ingest` worker and one `outpost api` replica on its live feed);
PostGIS KNN (`ORDER BY geog <-> point LIMIT k` behind aiohttp + psycopg); Redis GEOSEARCH (widening the
radius until k are found). While each is measured, benchmarks/feeder.py writes the same seeded fix stream
(--rate fixes/s) into its store: MQTT for Outpost, UPDATE for PostGIS, GEOADD for Redis. One load generator
(benchmarks/loadgen.py, its own process; random San Francisco points, k=5, status=available) runs, per design,
closed loops with n in flight (--clients; requests/s, p50, p99) and open loops at r requests/s (--open-rates;
p50/p99/p99.9 from the intended send time, no coordinated omission). Every answer is checked against the
geodesic truth at the time it was asked (benchmarks/truth.py) and each design's error rate printed.

Scaling: every load at each --units size, and closed loops of --scale-clients at each --scale-units size
(default: 100k units at 1, 4, 16 and 64 in flight and 1,000 req/s open, plus 10k and 1M units at 16 in flight:
a reduced matrix, since the full one takes long on 2 shared cores).
--profile FILE runs Outpost alone under cProfile and prints where its request path spends (the figures of a
profiled run are not comparable and are not reported). OUTPOST_BENCH_QUICK=1: 10k units, 16 in flight and
1,000 req/s, 3 s per load. An answer may be --lag-s stale and still be right (truth.py); the wrong ones are
checked again at --lax-lag-s, to tell stale answers from wrong ones.
Goals: Outpost ≥ 3× both baselines' requests/s with 16 in flight; p99 ≤ 5 ms at 1,000 requests/s open loop.
Exit 3 (skipped) without redis-server, or the `bench` extra (redis, pyproj).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import profile_report  # noqa: E402
from benchmarks.figures import figure  # noqa: E402
from benchmarks.fleet_stream import Fleet, LoggedFixes  # noqa: E402

EXIT_SKIPPED = 3
GOAL_RATIO = 3.0
GOAL_P99_MS = 5.0
OUTPOSTS = ("outpost", "split")  # the designs that are Outpost (benchmarks/designs.py), each vs both others


def missing() -> str | None:
    """Why the benchmark cannot run here (None: it can)."""
    from benchmarks.knn_redis import redis_server_path

    if redis_server_path() is None:
        return "no redis-server (apt-get install redis-server)"
    absent = [m for m in ("redis", "pyproj") if importlib.util.find_spec(m) is None]
    return f"missing {', '.join(absent)} (pip install -e '.[bench]')" if absent else None


def run_load(url: str, token: str, load: str, args: argparse.Namespace, out: Path) -> dict[str, float]:
    """One load generator run (its own process); its latency figures."""
    cmd = [sys.executable, str(REPO / "benchmarks" / "loadgen.py"), "--url", url, "--load", load]
    cmd += ["--seconds", str(args.seconds), "--out", str(out), f"--token={token}"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"loadgen {load} failed: {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_feeder(sink: str, target: str, units: int, rate: float, log: Path) -> subprocess.Popen[str]:
    """The fix stream into one design's store; returns once it is feeding."""
    cmd = [sys.executable, str(REPO / "benchmarks" / "feeder.py"), "--units", str(units), "--rate", str(rate)]
    cmd += ["--sink", sink, "--target", target, "--log", str(log)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "feeding":
        proc.kill()
        raise RuntimeError(f"feeder into {sink} did not start")
    return proc


def stop_feeder(proc: subprocess.Popen[str]) -> dict[str, float]:
    """Stop the stream; what it achieved."""
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    return dict(json.loads(out.strip().splitlines()[-1]))


def measure_design(
    name: str, fleet: Fleet, services: Any, args: argparse.Namespace, work: Path
) -> list[dict[str, Any]]:
    """Every load against one design while the stream runs; one row per load, answers checked."""
    from benchmarks.designs import serve
    from benchmarks.loadgen import Records
    from benchmarks.truth import check

    if len(fleet) in args.units:
        loads = [f"c{n}" for n in args.clients] + [f"o{r:g}" for r in args.open_rates]
    else:  # a size of the units axis only
        loads = [f"c{n}" for n in args.scale_clients]
    rows = []
    log_path = work / f"fixes-{name}-{len(fleet)}.npz"
    profile = args.profile if name == "outpost" else None
    with serve(name, fleet, services, work, profile) as serving:
        feeder = start_feeder(serving.sink, serving.target, len(fleet), args.rate, log_path)
        try:
            began, cpu = time.monotonic(), cpu_s(serving.pid)
            time.sleep(args.settle_s)
            ingest_cpu_pct = (cpu_s(serving.pid) - cpu) / (time.monotonic() - began) * 100
            print(f"  {name:8} server process CPU while only ingesting: {ingest_cpu_pct:.0f} % of a core")
            for load in loads:
                out = work / f"records-{name}-{len(fleet)}-{load}.json"
                began, cpu = time.monotonic(), cpu_s(serving.pid)
                figures = run_load(serving.url, serving.token, load, args, out)
                figures["server_cpu_pct"] = (cpu_s(serving.pid) - cpu) / (time.monotonic() - began) * 100
                figures["ingest_only_cpu_pct"] = ingest_cpu_pct
                figures["load_average"] = os.getloadavg()[0]
                rows.append({"design": name, "units": len(fleet), "load": load, "records": out, **figures})
                print(f"  {name:8} {load:>6}: {_row(figures)}", flush=True)
        finally:
            fed = stop_feeder(feeder)
    log = LoggedFixes.load(log_path)
    for row in rows:
        records = msgspec.json.decode(Path(row.pop("records")).read_bytes(), type=Records)
        verdicts = check(fleet, log, records, args.lag_s, k=5)
        row |= {
            "fixes_per_s": fed["fixes_per_s"],
            "checked": verdicts.checked,
            "wrong": dict(verdicts.wrong),
            "error_rate": verdicts.error_rate,
        }
        if verdicts.wrong and args.lax_lag_s > args.lag_s:
            # How stale the wrong ones were: right or not once answers `lax_lag_s` old count as right too.
            lax = check(fleet, log, records, args.lax_lag_s, k=5)
            row |= {"error_rate_lax": lax.error_rate, "lax_lag_s": args.lax_lag_s}
    return rows


def _row(f: dict[str, float]) -> str:
    return (
        f"{f['rps']:7.0f} req/s  p50 {f['p50_ms']:7.2f}  p99 {f['p99_ms']:7.2f}  p99.9 {f['p999_ms']:7.2f} ms"
        f"  server CPU {f['server_cpu_pct']:.0f} %, load average {os.getloadavg()[0]:.1f}"
    )


def print_tables(rows: list[dict[str, Any]]) -> None:
    """One table per fleet size: each design at each load, with the answers' error rate."""
    for units in sorted({r["units"] for r in rows}):
        print(f"\n{units:,} units")
        print(f"  {'design':8} {'load':>6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} "
              f"{'fixes/s':>8} {'CPU %':>6} {'checked':>8} {'wrong':>6}  reasons")  # fmt: skip
        for r in (r for r in rows if r["units"] == units):
            wrong = sum(r["wrong"].values())
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(r["wrong"].items())) or "-"
            if "error_rate_lax" in r:
                reasons += f" ({r['error_rate_lax']:.1%} wrong if {r['lax_lag_s']:g} s stale were right)"
            print(
                f"  {r['design']:8} {r['load']:>6} {r['rps']:8.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} "
                f"{r['p999_ms']:9.2f} {r['fixes_per_s']:8.0f} {r['server_cpu_pct']:6.0f} {r['checked']:8d} "
                f"{wrong:6d}  {reasons}"
            )


def metrics(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every figure in the suite's schema: Outpost's against each baseline at the same size and load."""
    by = {(r["units"], r["design"], r["load"]): r for r in rows}
    out = []
    for (units, design, load), r in by.items():
        out.append(figure(f"http {load} {units} units error rate, {design}", r["error_rate"], "fraction"))
        if design not in OUTPOSTS:
            continue
        for base in ("postgis", "redis"):
            b = by.get((units, base, load))
            closed = load.startswith("c")
            if closed:
                goal = load == "c16"
                out.append(
                    figure(
                        f"http {load} {units} units requests/s, {design} vs {base}", r["rps"], "requests/s",
                        base, b["rps"] if b else None, f"ratio >= {GOAL_RATIO:g}" if goal else None,
                        (r["rps"] / b["rps"] >= GOAL_RATIO) if goal and b else None,
                    )
                )  # fmt: skip
            for q in ("p50_ms", "p99_ms") + (() if closed else ("p999_ms",)):
                goal = not closed and q == "p99_ms" and load == "o1000"
                out.append(
                    figure(
                        f"http {load} {units} units {q[:-3]}, {design} vs {base}", r[q], "ms", base,
                        b[q] if b else None, f"value <= {GOAL_P99_MS:g} ms" if goal else None,
                        r[q] <= GOAL_P99_MS if goal else None,
                    )
                )  # fmt: skip
    return out


def print_ratios(rows: list[dict[str, Any]]) -> None:
    """Outpost / PostGIS and Outpost / Redis at every size and load, then the goals."""
    by = {(r["units"], r["design"], r["load"]): r for r in rows}
    print("\nratios Outpost/PostGIS and Outpost/Redis (req/s: higher is better; latency: lower is better)")
    for (units, design, load), r in sorted(by.items()):
        if design not in OUTPOSTS:
            continue
        parts = []
        for base in ("postgis", "redis"):
            b = by.get((units, base, load))
            if b:
                rps = f"req/s {r['rps'] / b['rps']:.2f}x, " if load.startswith("c") else ""
                parts.append(
                    f"/{base}: {rps}p50 {r['p50_ms'] / b['p50_ms']:.2f}x, "
                    f"p99 {r['p99_ms'] / b['p99_ms']:.2f}x"
                )
        print(f"  {units:>9,} units {load:>6} {design:8} " + "; ".join(parts))
    goals = [m for m in metrics(rows) if m["goal"] and m["met"] is not None]
    for m in goals:
        verdict = "met" if m["met"] else "NOT met"
        shown = f"ratio {m['ratio']:.2f}" if m["goal"].startswith("ratio") else f"{m['value']:.2f} ms"
        print(f"goal {m['name']}: {m['goal']}: {verdict} ({shown})")
    headline = [
        f"{m['name'].removeprefix('http ')} {m['ratio']:.2f}x" if m["goal"].startswith("ratio")
        else f"{m['name'].removeprefix('http ').split(', ')[0]} {m['value']:.1f} ms"
        for m in goals
        if "vs postgis" in m["name"] or m["goal"].startswith("ratio")
    ]  # fmt: skip
    print("ratios: " + "; ".join(headline))


def run(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    """Every design at every size on one set of services; the rows."""
    from benchmarks.designs import Services
    from benchmarks.knn_redis import RedisServer
    from tests.support.services import Mosquitto, PgCluster, free_port

    pg = PgCluster(fsync=False).start()
    broker = Mosquitto().start()
    redis = None
    rows: list[dict[str, Any]] = []
    try:
        redis = RedisServer(free_port(), work)
        services = Services(pg, broker, redis)
        for units in sorted({*args.units, *args.scale_units}):
            fleet = Fleet.generate(units)
            for name in args.designs:
                started = time.monotonic()
                print(f"{name}, {units:,} units: seeding and starting", flush=True)
                rows += measure_design(name, fleet, services, args, work)
                save(rows, args)  # so far: a run stopped for time still reports what it measured
                print(f"  ({time.monotonic() - started:.0f} s)", flush=True)
    finally:
        if redis:
            redis.close()
        broker.close()
        pg.close()
    return rows


def report(rows: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """The figures for the suite: every run, and the metrics in the suite's schema."""
    return {"runs": rows, "metrics": metrics(rows), "rate": args.rate, "lag_s": args.lag_s}


def save(rows: list[dict[str, Any]], args: argparse.Namespace) -> bool:
    """Write the figures to OUTPOST_BENCH_RESULT, if run_all named one."""
    target = os.environ.get("OUTPOST_BENCH_RESULT")
    if target:
        Path(target).write_text(json.dumps(report(rows, args), indent=2), encoding="utf-8")
    return bool(target)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    quick = os.environ.get("OUTPOST_BENCH_QUICK") == "1"
    ints = lambda text: [int(v) for v in text.split(",")]  # noqa: E731
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--units", type=ints, default=[10_000 if quick else 100_000], help="e.g. 10000,100000")
    p.add_argument("--rate", type=float, default=5000.0, help="fixes/s ingested during the measurement")
    p.add_argument(
        "--clients", type=ints, default=[16] if quick else [1, 4, 16, 64], help="closed loops: in flight"
    )
    p.add_argument(
        "--scale-units",
        type=lambda t: [int(v) for v in t.split(",") if v],
        default=[] if quick else [10_000, 1_000_000],
        help="more fleet sizes, measured only with --scale-clients in flight (the units axis); '' for none",
    )
    p.add_argument("--scale-clients", type=ints, default=[16])
    p.add_argument("--open-rates", type=lambda t: [float(v) for v in t.split(",") if v], default=[1000.0])
    p.add_argument("--seconds", type=float, default=3.0 if quick else 8.0, help="per load, after 1 s warm-up")
    p.add_argument("--designs", type=lambda t: t.split(","), default=["outpost", "postgis", "redis"])
    p.add_argument("--lag-s", type=float, default=0.5, help="how stale an answer may be and still be right")
    p.add_argument("--lax-lag-s", type=float, default=5.0, help="the error rate again at this lag, if any")
    p.add_argument("--settle-s", type=float, default=2.0, help="the stream runs this long before measuring")
    p.add_argument("--profile", type=Path, help="run Outpost alone under cProfile, writing this file")
    args = p.parse_args(argv)
    if args.profile:
        args.designs, args.scale_units = ["outpost"], []
    return args


def main() -> int:
    args = parse()
    reason = missing()
    if reason:
        print(f"SKIPPED: {reason}")
        return EXIT_SKIPPED
    print(
        f"nearest over HTTP: units {args.units}, {args.rate:.0f} fixes/s, k=5, status=available, "
        f"closed {args.clients} in flight, open {args.open_rates} req/s, {args.seconds:g} s per load; "
        f"{os.cpu_count()} CPUs (shared), load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="outpost-bench-http-") as tmp:
        rows = run(args, Path(tmp))
    print_tables(rows)
    if args.profile:
        profile_report.show(args.profile)
        return 0
    print_ratios(rows)
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (shared machine)")
    if not save(rows, args):
        print(json.dumps(report(rows, args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
