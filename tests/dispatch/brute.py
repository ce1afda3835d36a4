"""A brute-force nearest: rank every unit by great-circle distance and apply the filters one by one."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from geo import UnitPosition, haversine_m


@dataclass(frozen=True)
class Query:
    lon: float
    lat: float
    k: int = 5
    statuses: Collection[str] | None = ("available",)
    kinds: Collection[str] | None = None
    skills: Collection[str] = ()
    max_age_s: float | None = None
    now_s: float = 0.0
    radius_m: float | None = None
    max_accuracy_m: float | None = None


def first_failure(e: UnitPosition, q: Query) -> str | None:
    """The first filter a unit fails, in the order the index reports them."""
    if q.statuses is not None and e.status not in q.statuses:
        return f"status:{e.status}"
    if q.kinds is not None and e.kind not in q.kinds:
        return "kind"
    if not set(q.skills) <= set(e.skills):
        return "skills"
    if q.max_age_s is not None and q.now_s - e.ts_s > q.max_age_s:
        return "stale"
    if q.max_accuracy_m is not None and (e.accuracy_m is None or e.accuracy_m > q.max_accuracy_m):
        return "accuracy"
    return None


def nearest(entries: Iterable[UnitPosition], q: Query) -> tuple[list[tuple[str, float]], dict[str, int]]:
    """[(unit_id, distance_m)] nearest first (ties by id) and the exclusion counts."""
    ranked = sorted((haversine_m(q.lon, q.lat, e.lon, e.lat), e.unit_id, e) for e in entries)
    within = [r for r in ranked if q.radius_m is None or r[0] <= q.radius_m]
    matches = [r for r in within if first_failure(r[2], q) is None]
    picked = matches[: q.k]
    if len(picked) == q.k:
        considered = [r for r in within if (r[0], r[1]) < (picked[-1][0], picked[-1][1])]
    else:
        considered = within
    excluded = Counter(f for r in considered if (f := first_failure(r[2], q)) is not None)
    beyond = [r for r in ranked[len(within) :] if first_failure(r[2], q) is None]
    if missing := min(q.k - len(picked), len(beyond)):
        excluded["out_of_radius"] = missing  # matching units beyond the radius that would fill the places
    return [(r[1], r[0]) for r in picked], dict(excluded)
