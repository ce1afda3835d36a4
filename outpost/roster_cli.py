"""`outpost roster import FILE.csv [--timezone Area/City]`: a month's roster of assignments from CSV.

Every line is checked before anything is written (its fields, the unit and grid, the unit's kind against
the grid's level, overlaps with the file's other lines and with what is stored); any problem is printed with
its line number, every one of them, and nothing is imported (exit status 2). Otherwise the whole file goes in
one transaction; lines already stored are left as they are, so importing the same file again adds nothing.
The format is in `store.duty.roster`'s docstring and the README.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from outpost.imports import refuse
from outpost.root import run_migrate
from outpost.settings import Settings
from store import access, duty
from store.engine import open_engine


def add_options(p: argparse.ArgumentParser) -> None:
    """`outpost roster import`'s FILE and options."""
    p.add_argument("file", type=Path, metavar="FILE", help="the roster, CSV in UTF-8")
    p.add_argument(
        "--timezone",
        default="UTC",
        metavar="AREA/CITY",
        help="the station's time zone, in which the file's times are read (IANA name, default UTC)",
    )


def import_command(args: argparse.Namespace, settings: Settings) -> int:
    """import a roster of assignments from CSV (all or nothing; safe to rerun)

    Import assignments into OUTPOST_DATABASE_URL from a CSV file with the header
    date,shift,start,end,unit_id,grid_id (date YYYY-MM-DD, start and end HH:MM local times; an end at or
    before the start is the next day). Every line is checked first; every problem is printed with its line
    number and nothing is imported. Lines already stored are left as they are."""
    try:
        zone = ZoneInfo(args.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return _fail(f"unknown time zone {args.timezone!r} (an IANA name such as America/Los_Angeles)")
    try:
        content = Path(args.file).read_text(encoding="utf-8-sig")
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {exc.strerror or exc}")
    except UnicodeDecodeError as exc:
        return _fail(f"{args.file} is not UTF-8 text: {exc}")
    name = Path(args.file).name
    lines, problems = duty.parse_roster(content, zone)
    run_migrate(settings)
    engine = open_engine(settings.store.database_url, pool_size=1)
    now = datetime.now(UTC)
    try:
        report = duty.import_roster(engine, lines, problems=problems, actor=f"cli:roster:{name}", now=now)
        if report.created:
            detail = {"created": report.created, "unchanged": report.unchanged, "timezone": args.timezone}
            entry = access.AuditEntry(now, "cli", "import_roster", f"roster:{name}", detail)
            access.write_audit(engine, [entry])
    except duty.RosterRejected as exc:
        for problem in exc.problems:
            print(f"{name} {problem}", file=sys.stderr)
        return _fail(f"{len(exc.problems)} problems in {name}")
    finally:
        engine.dispose()
    print(
        f"roster {name} (times in {args.timezone}): {report.created} assignments created, "
        f"{report.unchanged} already stored, {report.shifts_created} shifts created"
    )
    return 0


def _fail(message: str) -> int:
    return refuse("roster", message)
