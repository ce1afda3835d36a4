"""`outpost simulate`: the argparse wiring, called by outpost/cli.py through the composition root."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from sim.simulate.progress import ProgressLine
from sim.simulate.run import SimulateOptions, SourceName, simulate


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `outpost simulate` options to `parser`."""
    d = SimulateOptions()
    parser.add_argument(
        "--mqtt-url",
        default=d.mqtt_url,
        help="broker to publish to: mqtt://[user:password@]host:port or mqtts://… (default %(default)s)",
    )
    parser.add_argument(
        "--source",
        choices=("roads", "walk", "traces"),
        default=None,
        help="roads: patrol units driving northern San Francisco's streets (default); "
        "walk: cheap random walkers for load tests; traces: replay --traces FILE",
    )
    parser.add_argument(
        "--traces",
        type=Path,
        default=None,
        help="trace CSV to replay (object_id,ts_iso8601_utc,lat,lon; .gz or plain), e.g. "
        "../shared/data/sf_cabspotting_2008-05-30_1h_pdt1700.csv.gz; implies --source traces",
    )
    numbers = (
        (
            "--devices",
            int,
            d.devices,
            "number of devices (traces: at most this many, 0 = all; default %(default)s)",
        ),
        (
            "--rate",
            float,
            d.rate_hz,
            "fixes per device per simulated second (default %(default)s = one every 5 s)",
        ),
        (
            "--duration",
            float,
            d.duration_s,
            "run for this many wall-clock seconds (0 = until the traces end or Ctrl-C)",
        ),
        (
            "--speedup",
            float,
            d.speedup,
            "simulated time runs this many times faster than the clock (default %(default)s); "
            "fixes carry wall-clock times, so units appear to move this much faster",
        ),
        (
            "--bad-share",
            float,
            0.0,
            "load tests: share of extra invalid messages (NaN, out of range, future, garbage)",
        ),
        (
            "--redeliver-share",
            float,
            0.0,
            "load tests: share of messages published twice (duplicates must not be stored)",
        ),
    )
    for flag, kind, default, text in numbers:
        parser.add_argument(flag, type=kind, default=default, help=text)
    parser.add_argument(
        "--format",
        choices=("outpost", "owntracks"),
        default=d.fmt,
        help="message format (default %(default)s)",
    )
    parser.add_argument(
        "--qos", type=int, choices=(0, 1), default=d.qos, help="MQTT QoS (default %(default)s)"
    )
    parser.add_argument("--mqtt-protocol", choices=("3.1.1", "5"), default=d.protocol)
    parser.add_argument("--client-id", default=d.client_id, help="MQTT client id (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same fleet)")


def options_from_args(args: argparse.Namespace) -> SimulateOptions:
    """SimulateOptions from parsed arguments; ValueError with what to do when they do not fit together."""
    source: SourceName = args.source or ("traces" if args.traces else "roads")
    if source == "traces" and args.traces is None:
        raise ValueError("--source traces needs --traces FILE")
    if args.traces is not None and not args.traces.is_file():
        raise ValueError(f"trace file {args.traces} not found")
    if args.speedup <= 0 or args.rate <= 0:
        raise ValueError("--speedup and --rate must be positive")
    return SimulateOptions(
        mqtt_url=args.mqtt_url,
        source=source,
        devices=args.devices,
        rate_hz=args.rate,
        duration_s=args.duration,
        speedup=args.speedup,
        fmt=args.format,
        qos=args.qos,
        traces=args.traces,
        bad_share=args.bad_share,
        redeliver_share=args.redeliver_share,
        seed=args.seed,
        client_id=args.client_id,
        protocol=args.mqtt_protocol,
    )


async def run_simulate(args: argparse.Namespace) -> int:
    """Run `outpost simulate` with parsed arguments; returns the exit status."""
    try:
        options = options_from_args(args)
    except ValueError as exc:
        print(f"outpost simulate: {exc}", file=sys.stderr)
        return 2
    progress = ProgressLine()
    try:
        stats = await simulate(options, on_progress=progress)
    except (OSError, ConnectionError, TimeoutError) as exc:
        print(
            f"outpost simulate: cannot connect to the MQTT broker at {options.mqtt_url} ({exc}). "
            "Start one (`outpost run` has one built in) or pass --mqtt-url.",
            file=sys.stderr,
        )
        return 1
    except asyncio.CancelledError:
        return 130
    progress.close(stats)
    if not stats.flushed:
        print(
            f"outpost simulate: {stats.sent - stats.acked} messages were not acknowledged by the broker",
            file=sys.stderr,
        )
        return 1
    return 0
