"""`outpost incidents import FILE.csv`: load SFPD-style incident reports as closed historic incidents.

Good rows are imported, bad ones are listed with their line numbers and reasons, and a summary ends the run.
Importing the same file again adds nothing (ids come from the rows). Exit status: 0 every row imported or
already present, 1 some rows were bad (the good ones are in), 2 nothing could be read.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from outpost.imports import refuse
from outpost.incident_csv import FIELDS, HeaderError, Rejected, open_text, read_rows
from outpost.root import run_migrate
from outpost.settings import Settings
from store.engine import open_engine
from store.incidents.history import HistoricIncident, import_batch

_BATCH = 1000
_BAR = 30  # characters


def add_options(p: argparse.ArgumentParser) -> None:
    """`outpost incidents import`'s FILE and options."""
    p.add_argument("file", type=Path, metavar="FILE", help="the CSV file (.csv or .csv.gz)")
    p.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="FIELD=HEADER",
        help=f"read FIELD from the column HEADER (fields: {', '.join(FIELDS)}); repeatable",
    )


@dataclass
class _Tally:
    rows: int = 0
    imported: int = 0
    rejected: list[Rejected] = field(default_factory=list)


def import_command(args: argparse.Namespace, settings: Settings) -> int:
    """import SFPD-style incident reports from CSV as closed historic incidents (safe to rerun)

    Import incident reports from a CSV file (.csv or .csv.gz) into OUTPOST_DATABASE_URL as closed incidents
    with source 'import'. Columns as DataSF's export has them: ts_iso8601_utc (or ts; RFC 3339 with a zone),
    lat, lon, category, and optionally descript, pd_district, address; other columns are ignored. Bad rows
    are listed with their line numbers and reasons and the rest is imported; importing the same file again
    adds nothing."""
    overrides: dict[str, str] = {}
    for item in args.column:
        name, sep, header = item.partition("=")
        if not sep or not name.strip() or not header.strip():
            return _fail(f"--column {item!r}: expected FIELD=HEADER, e.g. ts=Dates")
        overrides[name.strip()] = header.strip()
    path = Path(args.file)
    try:
        total = _count_rows(path)
        run_migrate(settings)
        tally = _import(path, overrides, settings, total, sys.stderr)
    except OSError as exc:
        return _fail(f"cannot read {path}: {exc.strerror or exc}")
    except (HeaderError, UnicodeDecodeError) as exc:
        return _fail(f"{path}: {exc}")
    for bad in tally.rejected:
        print(f"line {bad.line}: {'; '.join(bad.reasons)}")
    good = tally.rows - len(tally.rejected)
    print(
        f"incidents from {path.name}: {tally.rows} rows, {tally.imported} imported, "
        f"{good - tally.imported} already present, {len(tally.rejected)} rejected"
    )
    return 1 if tally.rejected else 0


def _import(path: Path, overrides: dict[str, str], settings: Settings, total: int, bar: TextIO) -> _Tally:
    tally, batch = _Tally(), list[HistoricIncident]()
    engine = open_engine(settings.store.database_url, pool_size=1)
    created_by = f"import:{path.name}"[:200]
    try:
        with open_text(path) as text:
            for row in read_rows(text, overrides):
                tally.rows += 1
                if isinstance(row, Rejected):
                    tally.rejected.append(row)
                else:
                    batch.append(row)
                if len(batch) >= _BATCH:
                    tally.imported += import_batch(engine, batch, created_by=created_by)
                    batch.clear()
                    _progress(bar, tally.rows, total)
            tally.imported += import_batch(engine, batch, created_by=created_by)
        _progress(bar, tally.rows, total, done=True)
    finally:
        engine.dispose()
    return tally


def _count_rows(path: Path) -> int:
    """Data rows in the file (a first, cheap pass, so the bar knows its end)."""
    with open_text(path) as text:
        return max(sum(1 for _ in csv.reader(text)) - 1, 0)


def _progress(out: TextIO, done_rows: int, total: int, *, done: bool = False) -> None:
    share = 1.0 if done or total == 0 else min(done_rows / total, 1.0)
    filled = round(share * _BAR)
    end = "\n" if done else ""
    out.write(f"\rimporting [{'#' * filled}{'.' * (_BAR - filled)}] {done_rows}/{total} rows{end}")
    out.flush()


def _fail(message: str) -> int:
    return refuse("incidents", message)
