"""`outpost presence refresh --from T --to T`: compute patrol presence again for a range of hours.

The patrol-presence heat map sums an hourly rollup that requests fill as they cover settled hours, and
`keep_presence` recomputes the last six hours every hour. History that arrived otherwise (tracks imported
from another system, a long outage of the API role, fixes older than six hours) is computed here, ahead of
the first request that would otherwise compute it inside the request.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime

from dispatch.routes.heatmap import presence_settings
from outpost.commands import Subcommands, command_group, instant
from outpost.root import run_migrate
from outpost.settings import Settings
from store import presence
from store.engine import open_engine


def add_presence_commands(sub: Subcommands) -> None:
    """`outpost presence refresh`."""
    nested = command_group(sub, "presence", "the patrol-presence rollup")
    p = nested.add_parser(
        "refresh",
        help="compute patrol presence again for the hours in [--from, --to)",
        description="Compute the patrol-presence rollup of every whole hour in [--from, --to) again from "
        "the stored fixes and status history, replacing what is stored for them (safe to rerun).",
    )
    p.add_argument("--from", dest="start", required=True, type=instant, help="ISO 8601 with an offset")
    p.add_argument("--to", dest="end", required=True, type=instant, help="ISO 8601 with an offset")
    p.set_defaults(handler=refresh_command)


def refresh_command(args: argparse.Namespace, settings: Settings) -> int:
    """Refresh the range; exit 2 when it is empty or reversed."""
    if args.end <= args.start:
        print("outpost presence refresh: --to must be after --from", file=sys.stderr)
        return 2
    run_migrate(settings)
    engine = open_engine(settings.store.database_url, pool_size=1)
    started = time.monotonic()
    try:
        now = datetime.now(UTC)
        presence.refresh(engine, args.start, args.end, presence_settings(settings.api), now)
    finally:
        engine.dispose()
    print(
        f"patrol presence computed for {args.start.isoformat()} to {args.end.isoformat()} "
        f"in {time.monotonic() - started:.1f} s"
    )
    return 0
