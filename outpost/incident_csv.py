"""Reading SFPD-style incident reports from CSV: each row becomes a `HistoricIncident` or a rejection with
its line number and every reason it failed (Traccar's habit: named reasons, collected, not thrown).

The default columns are DataSF's export as `../shared/data` has it (`ts_iso8601_utc`, `lat`, `lon`,
`category`, `descript`, `pd_district`, `address`); the shipped demo day names its time column `ts`, which is
taken when `ts_iso8601_utc` is absent. Other names come through `--column FIELD=HEADER`. Other columns are
ignored. A row's id is a UUID 5 of what it reports (and, for a row repeated word for word, of how many came
before it), so the same file always gives the same ids.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from schemas.sfpd import priority_of
from store.incidents.history import HistoricIncident

FIELDS = ("ts", "lat", "lon", "category", "descript", "pd_district", "address")
REQUIRED = ("ts", "lat", "lon", "category")
DEFAULT_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "ts": ("ts_iso8601_utc", "ts"),
    "lat": ("lat",),
    "lon": ("lon",),
    "category": ("category",),
    "descript": ("descript",),
    "pd_district": ("pd_district",),
    "address": ("address",),
}
# Fixed forever: changing it would give every imported row a new id, and a re-import would duplicate them.
_NAMESPACE = uuid.UUID("6f1d3c52-8a0e-5b7e-9c41-0d2f6a9b3e17")


class HeaderError(ValueError):
    """The file cannot be read as incidents at all (no header, a required column missing)."""


@dataclass(frozen=True)
class Rejected:
    """A row that was not imported: its line in the file and why."""

    line: int
    reasons: tuple[str, ...]


def open_text(path: Path) -> io.TextIOBase:
    """The file as text; `.gz` is decompressed."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def resolve_columns(header: list[str], overrides: Mapping[str, str]) -> dict[str, str]:
    """FIELD → header name used; HeaderError naming what is missing."""
    unknown = set(overrides) - set(FIELDS)
    if unknown:
        names = ", ".join(sorted(unknown))
        raise HeaderError(f"--column: unknown field {names} (fields: {', '.join(FIELDS)})")
    found: dict[str, str] = {}
    for field in FIELDS:
        candidates = (overrides[field],) if field in overrides else DEFAULT_COLUMNS[field]
        name = next((c for c in candidates if c in header), None)
        if name is not None:
            found[field] = name
        elif field in REQUIRED:
            raise HeaderError(
                f"no column {' or '.join(repr(c) for c in candidates)} for {field} in the header "
                f"({', '.join(header)}); name it with --column {field}=HEADER"
            )
    return found


def read_rows(text: io.TextIOBase, overrides: Mapping[str, str]) -> Iterator[HistoricIncident | Rejected]:
    """Every data row of the CSV in order, parsed or rejected."""
    reader = csv.reader(text)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise HeaderError("the file is empty (no header row)") from None
    columns = resolve_columns(header, overrides)
    index = {field: header.index(name) for field, name in columns.items()}
    line, seen = reader.line_num, Counter[str]()
    for record in reader:
        start, line = line + 1, reader.line_num
        if not any(v.strip() for v in record):
            continue  # a blank line is not a row
        values = {f: record[i].strip() if i < len(record) else "" for f, i in index.items()}
        row = parse_row(start, values)
        if isinstance(row, HistoricIncident):
            # A row repeated word for word (SFPD: a second count of one offence) is a record of its own;
            # its id adds how many came before it, so the same file still gives the same ids.
            seen[row.id] += 1
            if seen[row.id] > 1:
                row = replace(row, id=str(uuid.uuid5(_NAMESPACE, f"{row.id}#{seen[row.id]}")))
        yield row


def parse_row(line: int, values: Mapping[str, str]) -> HistoricIncident | Rejected:
    """One row's values by field → the incident, or every reason it cannot be one."""
    reasons: list[str] = []
    ts = _instant(values.get("ts", ""), reasons)
    lat = _degrees("lat", values.get("lat", ""), 90.0, reasons)
    lon = _degrees("lon", values.get("lon", ""), 180.0, reasons)
    category = values.get("category", "")
    if not category:
        reasons.append("category is empty")
    elif len(category) > 200:
        reasons.append(f"category is longer than 200 characters ({len(category)})")
    if reasons or ts is None or lat is None or lon is None:
        return Rejected(line, tuple(reasons))
    descript, address = values.get("descript", ""), values.get("address") or None
    district = values.get("pd_district", "")
    key = "|".join((ts.isoformat(), f"{lat:.6f}", f"{lon:.6f}", category, descript, address or ""))
    return HistoricIncident(
        id=str(uuid.uuid5(_NAMESPACE, key)),
        reported_at=ts,
        lon=lon,
        lat=lat,
        category=category.lower(),  # as the demo's live calls store SFPD categories
        priority=priority_of(category),
        description=descript,
        address=address,
        reporter=f"SFPD {district}" if district else "",
    )


def _instant(raw: str, reasons: list[str]) -> datetime | None:
    if not raw:
        reasons.append("ts is empty")
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        reasons.append(f"ts {raw[:40]!r} is not an ISO 8601 time")
        return None
    if parsed.tzinfo is None:
        reasons.append(f"ts {raw[:40]!r} has no time zone (write Z for UTC)")
        return None
    return parsed.astimezone(UTC)


def _degrees(name: str, raw: str, limit: float, reasons: list[str]) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        reasons.append(f"{name} {raw[:40]!r} is not a number" if raw else f"{name} is empty")
        return None
    if not (math.isfinite(value) and -limit <= value <= limit):
        reasons.append(f"{name} {raw[:40]} is outside ±{limit:g}")
        return None
    return value
