"""The `outpost` command: subcommands named for what operators do."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from dispatch import service
from schemas.config import ConfigError

Handler = Callable[[argparse.Namespace, service.Settings], int]


def _migrate(args: argparse.Namespace, settings: service.Settings) -> int:
    report = service.run_migrate(settings)
    path = "timescaledb" if report.timescaledb else ("partitions" if report.flavour.partitioned else "plain")
    applied = ", ".join(map(str, report.applied)) or "none (already up to date)"
    print(f"schema ready on {report.flavour.dialect} (fixes storage: {path}); applied: {applied}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="outpost",
        description="GPS telemetry ingestion and geospatial dispatch for community policing. "
        "Configuration: OUTPOST_* environment variables or a TOML file named by OUTPOST_CONFIG (see README).",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("migrate", help="apply the schema to OUTPOST_DATABASE_URL (safe to run twice)",
                       description="Create or upgrade Outpost's schema in OUTPOST_DATABASE_URL. "
                       "Uses TimescaleDB when the extension is available, native partitions otherwise.")
    p.set_defaults(handler=_migrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `outpost` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = service.load_settings()
        handler: Handler = args.handler
        return handler(args, settings)
    except ConfigError as exc:
        print(f"outpost: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
