"""The `outpost` command: subcommands named for what operators do."""

from __future__ import annotations

import argparse
import asyncio
import errno
import sys
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

from ingest.runner import BrokerUnreachable
from outpost import grids_cli, incidents_cli, roster_cli, tools
from outpost.audit_cli import add_audit_commands
from outpost.commands import command_group
from outpost.demo import DemoOptions, run_demo
from outpost.imports import add_import_commands
from outpost.logs import configure_logging
from outpost.presence_cli import add_presence_commands
from outpost.report_cli import add_report_commands
from outpost.root import Role, Running, run_migrate, serve
from outpost.settings import (
    SETTINGS_CLASSES,
    Settings,
    describe,
    env_text,
    load_settings,
    read_sources,
    reference_markdown,
)
from schemas.config import ConfigError, redact_setting, redact_url
from store import access
from store.engine import CannotStart, open_engine
from store.errors import unavailable_reason

Handler = Callable[[argparse.Namespace, Settings], int]


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    report = run_migrate(settings)
    path = "timescaledb" if report.timescaledb else ("partitions" if report.flavour.partitioned else "plain")
    applied = ", ".join(map(str, report.applied)) or "none (already up to date)"
    print(f"schema ready on {report.flavour.dialect} (fixes storage: {path}); applied: {applied}")
    return 0


def _token_create(args: argparse.Namespace, settings: Settings) -> int:
    run_migrate(settings)  # the first admin may be made before anything else ran
    engine = open_engine(settings.store.database_url, pool_size=1)
    try:
        record, token = access.create_token(engine, role=args.role, name=args.name, now=datetime.now(UTC))
    finally:
        engine.dispose()
    print(f"created {record.role} token #{record.id} {record.name!r}; it is shown once, on the next line:")
    print(token)  # the last line of output, so scripts can take it with `tail -n 1`
    return 0


def _serve(role: Role) -> Handler:
    def handler(args: argparse.Namespace, settings: Settings) -> int:
        asyncio.run(serve(settings, role, on_ready=_print_ready))
        return 0

    return handler


def _print_ready(running: Running) -> None:
    broker = "embedded broker" if running.embedded_broker else "broker"
    mqtt = redact_url(running.mqtt_url)
    print(f"Outpost is up: API {running.http_url}  ({broker} {mqtt}, storage {running.storage})")
    print(f"  map:     {running.http_url}/map   (sign in with a token; wall screen: /map?wall=1)")
    print(f"  ready:   {running.http_url}/readyz   (liveness /healthz)   OpenAPI: /openapi.json")
    print("  a token: outpost token create --role dispatcher   (then -H 'Authorization: Bearer <token>')")
    print("Press Ctrl-C to stop.", flush=True)


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    options = DemoOptions(
        units=args.units, speedup=args.speedup, traces=args.traces, duration_s=args.duration
    )
    asyncio.run(run_demo(settings, options, given=read_sources().keys()))
    return 0


def _config(args: argparse.Namespace, settings: Settings) -> int:
    if args.reference:
        print(reference_markdown(SETTINGS_CLASSES))
        return 0
    for part in (settings.store, settings.ingest, settings.api, settings.dispatch, settings.log):
        for name, default, _type in describe(type(part)):
            value = env_text(getattr(part, name[len("OUTPOST_") :].lower()))
            value = redact_setting(name, value)
            marker = "" if value == default else "   (set; default " + default + ")"
            print(f"{name}={value}{marker}")
    return 0


def _tool(name: str) -> Handler:
    def handler(args: argparse.Namespace, settings: Settings) -> int:
        return asyncio.run(tools.run_tool(name, args))

    return handler


# The serving commands: (command, role, one-line help, description).
_ROLES: tuple[tuple[str, Role, str, str], ...] = (
    (
        "run",
        "all",
        "run everything in one process: ingest, live index, API "
        "(embedded broker and SQLite unless configured)",
        "Run ingest, the live index and the HTTP API in one process against OUTPOST_DATABASE_URL and "
        "OUTPOST_MQTT_URL. With neither set, Outpost stores into ./outpost-data/outpost.db and starts "
        "its own MQTT broker on OUTPOST_MQTT_LISTEN.",
    ),
    (
        "ingest",
        "ingest",
        "production role: MQTT ingest alone (serves /healthz and /metrics)",
        "Subscribe to OUTPOST_MQTT_URL and store every valid fix exactly once. Several workers share "
        "the stream with OUTPOST_MQTT_SHARED_GROUP (MQTT 5).",
    ),
    (
        "api",
        "api",
        "production role: the HTTP API and live picture, following the database",
        "Serve the dispatcher API. Its live index is rebuilt from the database and follows it every second; "
        "the `ingest` role stores the fixes.",
    ),
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="outpost",
        description="GPS telemetry ingestion and geospatial dispatch for community policing. "
        "Configuration: OUTPOST_* environment variables or a TOML file named by OUTPOST_CONFIG (see README).",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser(
        "migrate",
        help="apply the schema to OUTPOST_DATABASE_URL (safe to run twice)",
        description="Create or upgrade Outpost's schema in OUTPOST_DATABASE_URL. "
        "Uses TimescaleDB when the extension is available, native partitions otherwise.",
    )
    p.set_defaults(handler=_migrate)
    token = command_group(sub, "token", "API tokens")
    p = token.add_parser(
        "create",
        help="create an API token in OUTPOST_DATABASE_URL; prints it last",
        description="Create an API token (no running server needed). The token is printed "
        "as the last line of output, once; only its hash is stored.",
    )
    p.add_argument("--role", required=True, choices=("admin", "dispatcher", "viewer"))
    p.add_argument("--name", default="cli", help="a label for the token (who or what uses it)")
    p.set_defaults(handler=_token_create)
    add_import_commands(
        sub,
        (
            ("grids", "patrol grids (police districts, community grids)", grids_cli),
            ("incidents", "incidents (historic reports for heat maps)", incidents_cli),
            ("roster", "duty rosters (which unit holds which grid in which shift)", roster_cli),
        ),
    )
    add_audit_commands(sub)
    add_presence_commands(sub)
    add_report_commands(sub)
    for command, role, short, long in _ROLES:
        sub.add_parser(command, help=short, description=long).set_defaults(handler=_serve(role))
    p = sub.add_parser(
        "demo",
        help="the embedded default plus a simulated San Francisco: patrol units on the "
        "road network, real SFPD calls for service, dispatched automatically",
        description="Run Outpost on the embedded default (SQLite in ./outpost-data, in-process "
        "MQTT broker) with simulated patrol units driving San Francisco's roads and the calls "
        "for service of 30 May 2008 replayed at their real places, accelerated. Prints the URLs "
        "to open and a live summary.",
    )
    p.add_argument("--units", type=int, default=30, help="patrol units to simulate (default 30)")
    p.add_argument(
        "--speedup", type=float, default=10.0, help="simulated time runs this many times faster (default 10)"
    )
    p.add_argument(
        "--traces",
        metavar="FILE",
        help="replay Cabspotting-style traces "
        "(object_id,ts_iso8601_utc,lat,lon; .csv or .csv.gz) instead of simulating units",
    )
    p.add_argument(
        "--duration", type=float, default=0.0, help="stop after this many seconds (default: Ctrl-C)"
    )
    p.set_defaults(handler=_demo)
    p = sub.add_parser("config", help="print the effective configuration (OUTPOST_* and OUTPOST_CONFIG)")
    p.add_argument(
        "--reference",
        action="store_true",
        help="print every setting with its default, what it allows and its meaning "
        "as a Markdown table (the README's configuration reference)",
    )
    p.set_defaults(handler=_config)
    for name, help_text in tools.TOOLS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        tools.add_tool_arguments(name, p)
        p.set_defaults(handler=_tool(name))
    return parser


# An address that is taken or not ours to bind: the operator's to fix, said in one line, not a traceback.
_CANNOT_LISTEN = (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `outpost` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    settings: Settings | None = None
    try:
        settings = load_settings()
        configure_logging(args.log_level, settings.log.log_format)
        handler: Handler = args.handler
        return handler(args, settings)
    except ConfigError as exc:
        print(f"outpost: configuration error: {exc}", file=sys.stderr)
        return 2
    except tools.MissingExtraError as exc:
        print(f"outpost: {exc}", file=sys.stderr)
        return 2
    except (CannotStart, BrokerUnreachable) as exc:
        return _cannot_start(args, str(exc), exc)
    except SQLAlchemyError as exc:
        reason = unavailable_reason(exc)
        if reason is None or settings is None:
            raise
        url = redact_url(settings.store.database_url)
        return _cannot_start(
            args,
            f"the database {url} cannot be used ({reason}); check that it runs, and that "
            "OUTPOST_DATABASE_URL names it (host, port, user, password, database)",
            exc,
        )
    except OSError as exc:
        if exc.errno not in _CANNOT_LISTEN:
            raise
        hint = "" if "OUTPOST_" in str(exc.strerror) else " (set OUTPOST_HTTP_HOST / OUTPOST_HTTP_PORT)"
        print(f"outpost: cannot start: {exc.strerror}{hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _cannot_start(args: argparse.Namespace, line: str, exc: BaseException) -> int:
    """One line and exit 2; the traceback too with --log-level DEBUG."""
    if str(args.log_level).upper() == "DEBUG":
        traceback.print_exception(exc, file=sys.stderr)
    print(f"outpost: cannot start: {line}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
