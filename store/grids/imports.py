"""Importing one level of grids from a GeoJSON FeatureCollection: every feature checked first, then one
transaction, so a bad feature stores nothing and a file imported twice changes nothing the second time.

A grid's id is its level and its name, made URL-safe (`community-castro-upper-market`), so the same file
always names the same grids. A community grid's parent is named by a property, or else it is the police
grid holding the largest share of its area; the share is reported so a person can check those below 80 %.
Grids of the level that the file does not mention are left as they are (and reported).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shapely.geometry import MultiPolygon
from sqlalchemy import Engine

from geo.boundaries import BoundaryError, area_shares, read_boundary
from geo.grids import LEVELS, Grid, Level
from store.grids.edits import Outcome, lock, put
from store.grids.records import GridError, GridRecord, current_by_id

# Below this share of its area in its parent, a community grid is listed for a person to check.
CHECK_SHARE_BELOW = 0.8
_SLUG = re.compile(r"[^a-z0-9]+")


class FeatureError(GridError):
    """One feature cannot be imported; the message names it (index and name) and the problem."""

    def __init__(self, index: int, name: str | None, problem: str) -> None:
        label = f"feature {index}" + (f" ({name})" if name else "")
        super().__init__(f"{label}: {problem}")
        self.index, self.name, self.problem = index, name, problem


@dataclass(frozen=True)
class ParentShare:
    """How much of a community grid lies in its parent, and in the next police grid."""

    grid_id: str
    name: str
    parent_id: str
    share: float
    runner_up: tuple[str, float] | None


@dataclass
class ImportReport:
    """What an import did, grid by grid."""

    level: Level
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    repairs: list[str] = field(default_factory=list)  # "feature 3 (Name): why: repaired with make_valid"
    shares: list[ParentShare] = field(default_factory=list)  # community grids, parent by area or named
    absent: list[str] = field(default_factory=list)  # current grids of the level that the file lacks

    def count(self, outcome: Outcome) -> int:
        """How many grids had this outcome."""
        return sum(1 for o in self.outcomes.values() if o == outcome)

    def to_check(self) -> list[ParentShare]:
        """The community grids with less than 80 % of their area in their parent, smallest share first."""
        return sorted(
            (s for s in self.shares if s.share < CHECK_SHARE_BELOW), key=lambda s: (s.share, s.name)
        )


@dataclass(frozen=True)
class _Planned:
    grid_id: str
    name: str
    parent_ref: str | None
    geometry: MultiPolygon


def grid_id_for(level: str, name: str) -> str:
    """The id the import gives a grid: its level and its name in lower-case words joined by hyphens."""
    return f"{level}-{_SLUG.sub('-', name.lower()).strip('-')}"


def import_grids(
    engine: Engine,
    document: Any,
    *,
    level: str,
    name_property: str = "name",
    parent_property: str | None = None,
    now: datetime,
) -> ImportReport:
    """Check every feature of `document` (parsed GeoJSON), then write them all in one transaction."""
    if level not in LEVELS:
        raise GridError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    if level == "police" and parent_property is not None:
        raise GridError("police grids have no parent: leave out the parent property")
    lv: Level = "police" if level == "police" else "community"
    report = ImportReport(lv)
    planned = _plan(document, lv, name_property, parent_property, report)
    with engine.begin() as conn:
        lock(conn)
        police = current_by_id(conn, "police")
        mine = current_by_id(conn, lv)
        for index, item in planned:
            parent = _parent(index, item, lv, police, report) if lv == "community" else None
            wanted = Grid(item.grid_id, lv, item.name, parent, item.geometry)
            outcome, _ = put(conn, mine.get(item.grid_id), wanted, now)
            report.outcomes[item.grid_id] = outcome
    report.absent = sorted(set(mine) - set(report.outcomes))
    return report


def _plan(
    document: Any, level: Level, name_property: str, parent_property: str | None, report: ImportReport
) -> list[tuple[int, _Planned]]:
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise GridError("the file is not a GeoJSON FeatureCollection")
    features = document.get("features")
    if not isinstance(features, list) or not features:
        raise GridError("the FeatureCollection has no features")
    planned: list[tuple[int, _Planned]] = []
    seen: dict[str, int] = {}
    for index, feature in enumerate(features):
        item = _feature(index, feature, level, name_property, parent_property, report)
        if item.grid_id in seen:
            raise FeatureError(index, item.name, f"the same name as feature {seen[item.grid_id]}")
        seen[item.grid_id] = index
        planned.append((index, item))
    return planned


def _feature(
    index: int,
    feature: Any,
    level: Level,
    name_property: str,
    parent_property: str | None,
    report: ImportReport,
) -> _Planned:
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise FeatureError(index, None, "is not a GeoJSON Feature")
    properties = feature.get("properties") or {}
    if not isinstance(properties, dict):
        raise FeatureError(index, None, "its properties are not an object")
    name = _text(properties.get(name_property))
    if name is None:
        has = ", ".join(sorted(map(str, properties))) or "none"
        raise FeatureError(index, None, f"no property {name_property!r} for its name (it has: {has})")
    grid_id = grid_id_for(level, name)
    if grid_id == f"{level}-" or len(grid_id) > 64:
        raise FeatureError(index, name, "its name gives no usable id (letters or digits, at most 56)")
    parent_ref = None
    if parent_property is not None:
        parent_ref = _text(properties.get(parent_property))
        if parent_ref is None:
            raise FeatureError(index, name, f"no property {parent_property!r} for its parent")
    try:
        boundary = read_boundary(feature.get("geometry"))
    except BoundaryError as exc:
        raise FeatureError(index, name, f"geometry {exc}") from None
    report.repairs += [f"feature {index} ({name}): {repair}" for repair in boundary.repairs]
    return _Planned(grid_id, name, parent_ref, boundary.geometry)


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text or None


def _parent(
    index: int, item: _Planned, level: Level, police: Mapping[str, GridRecord], report: ImportReport
) -> str:
    if not police:
        raise FeatureError(index, item.name, "there are no police grids yet: import the police level first")
    shares = area_shares(item.geometry, [p.as_grid() for p in police.values()])
    if item.parent_ref is not None:
        parent = _named_parent(item.parent_ref, police)
        if parent is None:
            raise FeatureError(
                index, item.name, f"its parent {item.parent_ref!r} is not a current police grid"
            )
    elif shares:
        parent = shares[0].grid_id
    else:
        raise FeatureError(index, item.name, "it overlaps no police grid: give it a parent property")
    share = next((s.share for s in shares if s.grid_id == parent), 0.0)
    others = [(s.grid_id, s.share) for s in shares if s.grid_id != parent]
    report.shares.append(ParentShare(item.grid_id, item.name, parent, share, others[0] if others else None))
    return parent


def _named_parent(ref: str, police: Mapping[str, GridRecord]) -> str | None:
    """A police grid named by its id, its name (any case) or the id its name gives."""
    if ref in police:
        return ref
    by_name = {r.name.casefold(): r.id for r in police.values()}
    return by_name.get(ref.casefold()) or (
        grid_id_for("police", ref) if grid_id_for("police", ref) in police else None
    )
