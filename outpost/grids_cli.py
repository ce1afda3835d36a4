"""`outpost grids import FILE --level police|community`: load one level of patrol grids from GeoJSON.

Every feature is checked before anything is written, and the whole file goes in one transaction. A problem
ends the command in one line naming the feature (index and name) and what is wrong, with exit status 2.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

from outpost.imports import refuse
from outpost.root import run_migrate
from outpost.settings import Settings
from store import grids
from store.engine import open_engine


def add_options(p: argparse.ArgumentParser) -> None:
    """`outpost grids import`'s FILE and options."""
    p.add_argument("file", type=Path, metavar="FILE", help="a GeoJSON FeatureCollection (lon, lat)")
    p.add_argument("--level", required=True, choices=("police", "community"))
    p.add_argument(
        "--name-property", default="name", metavar="NAME", help="the property naming each grid (default name)"
    )
    p.add_argument(
        "--parent-property",
        metavar="NAME",
        help="community grids: the property naming the parent police grid (its name or id)",
    )


def import_command(args: argparse.Namespace, settings: Settings) -> int:
    """import one level of grids from a GeoJSON FeatureCollection (all or nothing; safe to rerun)

    Import police or community grids from a GeoJSON FeatureCollection into OUTPOST_DATABASE_URL. Every feature
    is checked first; one bad feature stops the import and nothing is written. Importing the same file again
    changes nothing; a changed boundary becomes a new version (the old one stays valid for the past). Without
    --parent-property, a community grid's parent is the police grid holding the largest share of its area;
    those under 80 % are listed for checking."""
    try:
        document = json.loads(Path(args.file).read_bytes())
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {exc.strerror or exc}")
    except (ValueError, UnicodeDecodeError) as exc:
        return _fail(f"{args.file} is not JSON: {exc}")
    run_migrate(settings)
    engine = open_engine(settings.store.database_url, pool_size=1)
    try:
        report = grids.import_grids(
            engine,
            document,
            level=args.level,
            name_property=args.name_property,
            parent_property=args.parent_property,
            now=datetime.now(UTC),
        )
    except grids.GridError as exc:
        return _fail(str(exc))
    finally:
        engine.dispose()
    _print_report(report, Path(args.file).name)
    return 0


def _fail(message: str) -> int:
    return refuse("grids", message)


def _print_report(report: grids.ImportReport, source: str) -> None:
    print(
        f"{report.level} grids from {source}: {report.count('created')} created, "
        f"{report.count('unchanged')} unchanged, {report.count('new_version')} new versions"
    )
    for repair in report.repairs:
        print(f"  repaired {repair}")
    if report.absent:
        print(f"  not in the file, left as they are: {', '.join(report.absent)}")
    check = report.to_check()
    if check:
        print(
            f"{len(check)} community grids have < 80 % of their area in their parent police grid; check them:"
        )
    for s in check:
        runner_up = f"; next {s.runner_up[0]} {s.runner_up[1]:.1%}" if s.runner_up else ""
        print(f"  {s.grid_id} ({s.name}): {s.share:.1%} in {s.parent_id}{runner_up}")
