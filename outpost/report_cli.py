"""`outpost report monthly --month YYYY-MM [--format csv|json|html] [--regenerate] [--output FILE]`: the
monthly workload and performance report against OUTPOST_DATABASE_URL, on stdout or in a file.

A month that is over is answered as stored (generated and stored on first asking); `--regenerate`
recomputes and replaces it; the running month is computed up to now and not stored. Exit status: 0, or 2
for a month that is not YYYY-MM or has not begun (the message names `--month`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from dispatch.reports.formats import FORMATS, RENDERERS
from dispatch.reports.months import Month
from dispatch.reports.service import FutureMonth, monthly_report
from outpost.commands import Subcommands, command_group
from outpost.report_rules import rules_of
from outpost.root import run_migrate
from outpost.settings import Settings
from store.engine import open_engine


def add_report_commands(sub: Subcommands) -> None:
    """`outpost report monthly`, whose help is `monthly_command`'s docstring."""
    commands = command_group(sub, "report", "reports (the monthly workload and performance list)")
    summary, _, description = (monthly_command.__doc__ or "").partition("\n\n")
    p = commands.add_parser("monthly", help=summary.strip(), description=" ".join(description.split()))
    p.add_argument("--month", required=True, metavar="YYYY-MM", help="the month, in station time")
    p.add_argument("--format", choices=FORMATS, default="json", help="json (default), csv or html")
    p.add_argument("--regenerate", action="store_true", help="recompute a past month and replace it")
    p.add_argument("--output", type=Path, metavar="FILE", help="write the report here instead of stdout")
    p.set_defaults(handler=monthly_command)


def monthly_command(args: argparse.Namespace, settings: Settings) -> int:
    """print a month's workload and performance report (each officer, ranked; station and grid totals)

    Each officer's month: incidents handled by priority, offers accepted, declined and timed out,
    response intervals P50/P90, distance patrolled, hours on duty, share of duty inside the assigned grid,
    check-ins, roll calls, evaluations and feedback; station and grid totals. A past month is stored the
    first time and answered the same afterwards; --regenerate recomputes it."""
    try:
        month = Month.parse(args.month)
    except ValueError as exc:
        return _refuse(f"--month {exc}")
    run_migrate(settings)
    engine = open_engine(settings.store.database_url, pool_size=1)
    try:
        report = monthly_report(
            engine, month, rules_of(settings), now_s=time.time(), trigger="cli", regenerate=args.regenerate
        )
    except FutureMonth as exc:
        return _refuse(f"--month {exc}")
    finally:
        engine.dispose()
    body = RENDERERS[args.format](report)
    if args.output is not None:
        args.output.write_bytes(body)
        print(f"{month.label}: {len(report.officers)} officers, written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
    return 0


def _refuse(message: str) -> int:
    print(f"outpost report monthly: {message}", file=sys.stderr)
    return 2
