"""The values the live index stores and returns: a unit's position and attributes, write records, results."""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import NamedTuple, TypedDict

from schemas.vocabulary import UNIT_KINDS, UNIT_STATUSES

# Fixed order: the index also keeps each unit's status as its position in this tuple (one byte a unit), so
# the search's status test never touches the entry.
STATUS_ORDER = UNIT_STATUSES
STATUSES = frozenset(STATUS_ORDER)
KINDS = frozenset(UNIT_KINDS)


class UnitPosition(NamedTuple):
    """A unit's latest accepted fix and the attributes dispatch filters on."""

    unit_id: str
    lon: float
    lat: float
    ts_s: float
    accuracy_m: float | None = None
    status: str = "off_duty"
    kind: str = "police"
    skills: frozenset[str] = frozenset()
    speed_mps: float | None = None
    heading_deg: float | None = None
    device_id: str | None = None


VACANT = UnitPosition("", 0.0, 0.0, -math.inf)
"""Fills freed slots; also carries a new unit's defaults (off_duty, police, no skills)."""


class Change(NamedTuple):
    """What a write did (Tile38 style): the entry before and after. old is None on insert, new on remove."""

    old: UnitPosition | None
    new: UnitPosition | None

    @property
    def ignored(self) -> bool:
        """True when the write carried an older fix and changed nothing (then new is old)."""
        return self.old is not None and self.new is self.old


class Neighbor(NamedTuple):
    """One nearest-search result."""

    entry: UnitPosition
    distance_m: float


class NearestResult(NamedTuple):
    """Nearest matching units, nearest first (ties by unit_id), and why nearer units were left out.

    excluded counts each left-out unit once, under the first filter it fails in the order
    "status:<status>", "kind", "skills", "stale", "accuracy": among units ranked before the last result,
    or, when fewer than k matched within radius_m, among all units within radius_m (without radius_m and
    without any match, nothing is counted). "out_of_radius" counts the matching units beyond radius_m that
    would have filled the places left (at most k minus the results; absent when none).
    """

    neighbors: list[Neighbor]
    excluded: dict[str, int]


def check_attrs(entry: UnitPosition) -> None:
    """ValueError unless the entry's status and kind are known values."""
    if entry.status not in STATUSES:
        raise ValueError(f"unknown status {entry.status!r}; expected one of {STATUS_ORDER}")
    if entry.kind not in KINDS:
        raise ValueError(f"unknown kind {entry.kind!r}; expected one of {sorted(KINDS)}")


class Filters(TypedDict, total=False):
    """What a nearest query may filter on (the keyword arguments of `PositionIndex.nearest` but the
    clock): allowed statuses and kinds, skills all required, the oldest fix (s), a radius (m), the worst
    accuracy (m)."""

    statuses: Collection[str] | None
    kinds: Collection[str] | None
    skills: Collection[str] | None
    max_age_s: float | None
    radius_m: float | None
    max_accuracy_m: float | None
