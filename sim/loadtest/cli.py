"""`outpost loadtest`: its arguments and entry point (wired into the `outpost` command by outpost.cli)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sim.loadtest.plan import DEFAULT_AREA, FORMATS, Plan, PlanError, parse_bbox

EXIT_PASSED = 0
EXIT_ORACLE_FAILED = 1
EXIT_USAGE = 2


def add_loadtest_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every `outpost loadtest` option to `parser`, in groups: target, fleet, dispatchers, measuring."""
    _target(parser.add_argument_group("target"))
    _fleet(parser.add_argument_group("device fleet"))
    _dispatchers(parser.add_argument_group("dispatcher load"))
    _measuring(parser.add_argument_group("measuring and output"))


def _target(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--mqtt-url", default="", help="broker the devices publish to, mqtt://[user:pass@]host:port"
    )
    g.add_argument(
        "--http-url", default="", help="Outpost's API, e.g. http://127.0.0.1:8080 (probes, API load)"
    )
    g.add_argument(
        "--token", default="", help="API bearer token (dispatcher role or higher) for the API calls"
    )
    g.add_argument(
        "--db-url", default="", help="Outpost's database, read by the oracle (lost, duplicated, …)"
    )


def _fleet(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--devices", type=int, required=True, help="simulated devices (1..100000)")
    g.add_argument("--rate", type=float, required=True, help="fixes per second per device")
    g.add_argument("--duration", type=float, required=True, help="seconds to publish for; then it stops")
    g.add_argument(
        "--format",
        default="outpost",
        choices=FORMATS,
        help="outpost (own JSON, with seq), owntracks, or http (OsmAnd/Traccar Client)",
    )
    g.add_argument("--qos", type=int, default=1, choices=(0, 1), help="MQTT QoS of the fleet (default 1)")
    g.add_argument(
        "--bad-share",
        type=float,
        default=0.0,
        help="share of bad messages: NaN, out of range, future, garbage in turn (default 0)",
    )
    g.add_argument(
        "--redeliver-share",
        type=float,
        default=0.0,
        help="share of valid messages sent again 1 s later, same seq and ts (default 0)",
    )
    g.add_argument("--connections", type=int, default=1, help="MQTT connections of the fleet (default 1)")
    g.add_argument(
        "--area",
        type=parse_bbox,
        default=DEFAULT_AREA,
        help="min_lon,min_lat,max_lon,max_lat of the random walks (default central San Francisco)",
    )
    g.add_argument(
        "--traces",
        type=Path,
        default=None,
        help="replay real traces instead: CSV object_id,ts_iso8601_utc,lat,lon (.gz ok)",
    )
    g.add_argument("--http-ingest-path", default="/ingest/osmand", help="OsmAnd endpoint for --format http")
    g.add_argument("--seed", type=int, default=1, help="random seed of the fleet (default 1)")


def _dispatchers(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--dispatch-rate", type=float, default=0.0, help="nearest-unit queries per second (default 0)"
    )
    g.add_argument(
        "--dispatch-clients", type=int, default=4, help="concurrent dispatcher clients (default 4)"
    )
    g.add_argument(
        "--incident-rate", type=float, default=0.0, help="P4 incidents created per second (default 0)"
    )


def _measuring(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--probe-rate",
        type=float,
        default=2.0,
        help="publish → visible probes per second, needs --http-url (default 2, 0: off)",
    )
    g.add_argument(
        "--watch-interval-ms",
        type=float,
        default=100.0,
        help="poll interval for publish → stored, needs --db-url (default 100, 0: off)",
    )
    g.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        help="seconds to wait for the store to settle at the end (default 30)",
    )
    g.add_argument(
        "--outpost-pid",
        type=int,
        action="append",
        default=[],
        help="an Outpost process to report CPU and memory of (repeatable; default: the process "
        "listening on --http-url's port, when local)",
    )
    g.add_argument("--json", type=Path, default=None, help="write the full report as JSON to this file")
    g.add_argument("--chart", type=Path, default=None, help="write a PNG of throughput and latency over time")


def plan_from_args(args: argparse.Namespace) -> Plan:
    """The run's plan from parsed arguments (checked by `Plan.check` before use)."""
    return Plan(
        devices=args.devices,
        rate_hz=args.rate,
        duration_s=args.duration,
        mqtt_url=args.mqtt_url,
        http_url=args.http_url,
        token=args.token,
        qos=args.qos,
        format=args.format,
        bad_share=args.bad_share,
        redeliver_share=args.redeliver_share,
        connections=args.connections,
        dispatch_rate_qps=args.dispatch_rate,
        dispatch_clients=args.dispatch_clients,
        incident_rate_per_s=args.incident_rate,
        probe_rate_hz=args.probe_rate,
        area=args.area,
        traces=args.traces,
        db_url=args.db_url,
        http_ingest_path=args.http_ingest_path,
        drain_timeout_s=args.drain_timeout,
        outpost_pids=tuple(args.outpost_pid),
        seed=args.seed,
    )


async def run_loadtest(args: argparse.Namespace) -> int:
    """Run the load test described by `args`; 0 when the oracle passes (or was not asked), 1 when it fails."""
    try:
        plan = plan_from_args(args)
        plan.check()
    except PlanError as exc:
        print(f"outpost loadtest: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # Imported here, not at the top: `outpost --help` builds every subcommand's parser, and the run's
    # machinery (the `sim` extra: HDR histograms, matplotlib) is neither fast to import nor always installed.
    from sim.loadtest import runner  # noqa: PLC0415
    from sim.loadtest.chart import write_chart  # noqa: PLC0415
    from sim.loadtest.report import build_report, render_summary, write_json  # noqa: PLC0415
    from sim.loadtest.store import open_readonly  # noqa: PLC0415

    engine = open_readonly(plan.db_url) if plan.db_url else None
    try:
        tools = runner.Tools(watch_interval_s=args.watch_interval_ms / 1000.0)
        result = await runner.run(plan, engine, sys.stdout, tools)
    finally:
        if engine is not None:
            engine.dispose()
    report = build_report(result)
    print()
    print(render_summary(report))
    if args.json is not None:
        write_json(report, args.json)
        print(f"  report: {args.json}")
    if args.chart is not None:
        write_chart(report, args.chart)
        print(f"  chart: {args.chart}")
    return EXIT_ORACLE_FAILED if report["passed"] is False else EXIT_PASSED


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone parser (for `python -m sim.loadtest` until `outpost loadtest` is wired)."""
    parser = argparse.ArgumentParser(prog="outpost loadtest", description=DESCRIPTION)
    add_loadtest_arguments(parser)
    return parser


DESCRIPTION = (
    "Drive a running Outpost from outside: a device fleet over MQTT or HTTP (with bad messages and "
    "redeliveries), a dispatcher load on the API, and publish → visible probes. Reports lost and duplicated "
    "fixes (a per-device seq is the oracle; needs --db-url), rejects per reason against what was injected, "
    "fixes/s, latency percentiles (HDR histograms), CPU and memory, as text, JSON and a PNG chart. "
    "Exit status: 0 pass, 1 the oracle found a problem, 2 bad options."
)
