"""Derive the small demo data shipped in sim/data from the San Francisco data in ../shared/data.

    python -m sim.simulate.build_demo_data [--shared ../shared/data]

- sf_incidents_2008-05-30.csv.gz: the SFPD incident rows of Friday 2008-05-30 (local time) inside the
  road graph's bounding box; columns ts (UTC, RFC 3339), lat, lon, category, descript, pd_district, address.
- sf_police_districts.geojson: the 10 police districts, simplified as a coverage (shared borders stay
  shared: no gaps or overlaps are introduced) with a 5e-5 degree tolerance (about 5 m), 6 decimals.
- sf_analysis_neighborhoods.geojson: the 41 analysis neighbourhoods (property `neighborhood`), simplified
  the same way (the source has 42,667 vertices in 1.8 MB).
The road graph has its own builder, `sim.simulate.build_roads`. Sources, licences: sim/data/README.md.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import sys
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import mapping, shape

from sim.simulate.incidents import DEFAULT_INCIDENTS_PATH, INCIDENT_COLUMNS
from sim.simulate.roads import DATA_DIR, shipped_graph

INCIDENTS_SOURCE = "sf_police_incidents_2008-05-26_to_06-01.csv.gz"
DISTRICTS_SOURCE = "sf_police_districts.geojson"
DISTRICTS_PATH = DATA_DIR / "sf_police_districts.geojson"
NEIGHBORHOODS_SOURCE = "sf_analysis_neighborhoods.geojson"
NEIGHBORHOODS_PATH = DATA_DIR / "sf_analysis_neighborhoods.geojson"
SAMPLE_DAY_LOCAL = "2008-05-30"
_SIMPLIFY_DEG = 5e-5


def incident_sample(source: Path) -> bytes:
    """Gzipped CSV of the sample day's incidents inside the road graph's box."""
    west, south, east, north = shipped_graph().bbox
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(INCIDENT_COLUMNS)
    with gzip.open(source, "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            lon, lat = float(row["lon"]), float(row["lat"])
            if row["ts_local_america_los_angeles"].startswith(SAMPLE_DAY_LOCAL) and (
                west <= lon <= east and south <= lat <= north
            ):
                writer.writerow(
                    [
                        row["ts_iso8601_utc"],
                        row["lat"],
                        row["lon"],
                        row["category"],
                        row["descript"],
                        row["pd_district"],
                        row["address"],
                    ]
                )
    return gzip.compress(out.getvalue().encode(), compresslevel=9, mtime=0)


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, list | tuple):
        return [_round(v) for v in value]
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    return value


def simplified_coverage(source: Path, properties: tuple[str, ...]) -> bytes:
    """A GeoJSON coverage, coverage-simplified, keeping only `properties` of each feature."""
    doc = json.loads(source.read_text(encoding="utf-8"))
    geoms = shapely.coverage_simplify([shape(f["geometry"]) for f in doc["features"]], _SIMPLIFY_DEG)
    features = [
        {
            "type": "Feature",
            "properties": {name: f["properties"][name] for name in properties},
            "geometry": _six_decimals(g),
        }
        for f, g in zip(doc["features"], geoms, strict=True)
    ]
    return json.dumps({"type": "FeatureCollection", "features": features}, separators=(",", ":")).encode()


def _six_decimals(geom: Any) -> Any:
    """The GeoJSON geometry rounded to 6 decimals; where rounding makes a ring cross itself or collapse,
    snapped to the 1e-6 grid by GEOS instead, which keeps it valid (so the shipped file needs no repair)."""
    rounded = _round(mapping(geom))
    if shape(rounded).is_valid:
        return rounded
    return _round(mapping(shapely.set_precision(geom, 1e-6)))


def simplified_districts(source: Path) -> bytes:
    """The districts GeoJSON, coverage-simplified, with the properties `district` and `company`."""
    return simplified_coverage(source, ("district", "company"))


def simplified_neighborhoods(source: Path) -> bytes:
    """The analysis neighbourhoods GeoJSON, coverage-simplified, with the property `neighborhood`."""
    return simplified_coverage(source, ("neighborhood",))


def main(argv: list[str] | None = None) -> int:
    """Command line entry."""
    default_shared = Path(__file__).resolve().parents[3] / "shared" / "data"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=default_shared, help="folder with the source files")
    args = parser.parse_args(argv)
    for name in (INCIDENTS_SOURCE, DISTRICTS_SOURCE, NEIGHBORHOODS_SOURCE):
        if not (args.shared / name).is_file():
            print(f"{args.shared / name} not found: pass --shared DIR", file=sys.stderr)
            return 2
    DEFAULT_INCIDENTS_PATH.write_bytes(incident_sample(args.shared / INCIDENTS_SOURCE))
    DISTRICTS_PATH.write_bytes(simplified_districts(args.shared / DISTRICTS_SOURCE))
    NEIGHBORHOODS_PATH.write_bytes(simplified_neighborhoods(args.shared / NEIGHBORHOODS_SOURCE))
    for path in (DEFAULT_INCIDENTS_PATH, DISTRICTS_PATH, NEIGHBORHOODS_PATH):
        print(f"{path}: {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
