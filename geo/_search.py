"""The nearest search's inner parts: filters, the candidate scan, the completeness proof, exact ranking.

Candidates come from the tree in chord order (nearest first). Each is measured by its haversine term
a = sin²(θ/2), computed with the same operands and order as `haversine_m`, so metres are bit-identical to
it. Ranking by a ranks by metres, except that distinct terms can round to the same metres; within a tiny
band around a boundary the comparison is therefore redone in metres, then by unit_id, as the contract says.
"""

from __future__ import annotations

import functools
import math
from array import array
from collections.abc import Collection, Sequence
from typing import NamedTuple

from geo.distance import EARTH_RADIUS_M, hav_to_m
from geo.units import KINDS, STATUS_ORDER, STATUSES, UnitPosition

# A fetch proves "nothing unfetched ranks before X" only with this margin on sqrt(haversine term), i.e.
# half-chord on the unit sphere (1e-12 ≈ 6 µm): the tree's chords and our haversine round differently, by
# ~1e-16.
PROOF_MARGIN = 1e-12
# Relative band around a haversine term inside which distinct terms may round to the same metres.
TIE_BAND = 1e-12

_asin = math.asin
_sqrt = math.sqrt
_DIAMETER_M = 2.0 * EARTH_RADIUS_M  # hav_to_m's factor, so the inlined copy below rounds identically
_STATUS_REASON = tuple(f"status:{s}" for s in STATUS_ORDER)

Match = tuple[float, int]  # (haversine term, slot)
Reject = tuple[float, int, str]  # (haversine term, slot, reason)
Ranked = tuple[float, int, float]  # (metres, slot, haversine term)


class Filter(NamedTuple):
    """A query's filters, validated and in the form the scan wants."""

    statuses: frozenset[str] | None
    status_ok: bytes | None  # by status code: 1 = allowed
    kinds: frozenset[str] | None
    skills: frozenset[str]
    now_s: float
    max_age_s: float | None
    max_accuracy_m: float | None


def make_filter(
    statuses: Collection[str] | None,
    kinds: Collection[str] | None,
    skills: Collection[str] | None,
    max_age_s: float | None,
    now_s: float | None,
    max_accuracy_m: float | None,
) -> Filter:
    """Validate a query's filters (ValueError for unknown statuses or kinds, or max_age_s without now_s)."""
    status_set = None if statuses is None else frozenset(statuses)
    kind_set = None if kinds is None else frozenset(kinds)
    if kind_set is not None and not kind_set <= KINDS:
        raise ValueError(f"unknown kinds {sorted(kind_set - KINDS)}")
    if max_age_s is not None and now_s is None:
        raise ValueError("max_age_s needs now_s (the caller's clock)")
    status_ok = None if status_set is None else _status_mask(status_set)
    return Filter(
        status_set, status_ok, kind_set, frozenset(skills or ()), now_s or 0.0, max_age_s, max_accuracy_m
    )


@functools.lru_cache(maxsize=256)  # the same few status sets are asked for all day
def _status_mask(statuses: frozenset[str]) -> bytes:
    if unknown := statuses - STATUSES:
        raise ValueError(f"unknown statuses {sorted(unknown)}")
    return bytes(s in statuses for s in STATUS_ORDER)


def scan(
    slots: list[int],
    q: Sequence[float],
    flt: Filter,
    geo: array[float],
    codes: bytearray,
    entries: list[UnitPosition],
) -> tuple[list[Match], list[Reject], float, int]:
    """Measure and classify candidates: (matches, rejects, largest term, count passing status/kind/skills).

    q and geo rows are geo._tree.SpherePoint layouts (lon_rad, lat_rad, cos(lat), x, y, z).
    """
    # The dispatcher's innermost loop: flat arrays, locals, two sines a candidate, no calls.
    sin = math.sin
    q_lon, q_lat, q_cos = q[0], q[1], q[2]
    status_ok = flt.status_ok
    check_entry = flt.kinds is not None or bool(flt.skills) or flt.max_age_s is not None
    check_entry = check_entry or flt.max_accuracy_m is not None
    matches: list[Match] = []
    rejects: list[Reject] = []
    max_a = 0.0
    static_fail = 0
    for slot in slots:
        b = slot * 6  # GEO_STRIDE
        # Same operands, in the same order, as haversine_m(q_lon, q_lat, lon, lat): identical rounding.
        s_dphi = sin((geo[b + 1] - q_lat) * 0.5)
        s_dlam = sin((geo[b] - q_lon) * 0.5)
        a = s_dphi * s_dphi + q_cos * geo[b + 2] * s_dlam * s_dlam
        if a > max_a:
            max_a = a
        if status_ok is not None and not status_ok[codes[slot]]:
            rejects.append((a, slot, _STATUS_REASON[codes[slot]]))
            static_fail += 1
        elif check_entry and (reason := _entry_reason(entries[slot], flt)) is not None:
            rejects.append((a, slot, reason))
            static_fail += reason in ("kind", "skills")
        else:
            matches.append((a, slot))
    return matches, rejects, max_a, len(slots) - static_fail


def _entry_reason(e: UnitPosition, flt: Filter) -> str | None:
    """The first non-status filter the entry fails, or None."""
    if flt.kinds is not None and e.kind not in flt.kinds:
        return "kind"
    if flt.skills and not flt.skills <= e.skills:
        return "skills"
    if flt.max_age_s is not None and flt.now_s - e.ts_s > flt.max_age_s:
        return "stale"
    if flt.max_accuracy_m is not None and (e.accuracy_m is None or e.accuracy_m > flt.max_accuracy_m):
        return "accuracy"
    return None


class Fetch(NamedTuple):
    """What one k-NN fetch established."""

    max_a: float  # largest haversine term fetched
    exhausted: bool  # every unit was fetched
    no_more_matches: bool  # no unfetched unit can pass the status/kind/skill filters

    def proves(self, a: float) -> bool:
        """True when no unfetched unit can have a haversine term within the tie band of `a`.

        The tree fetched in chord order and chord = 2·sqrt(a) up to rounding, so everything unfetched has
        sqrt(term) >= sqrt(max_a) - margin.
        """
        return self.exhausted or _sqrt(self.max_a) - PROOF_MARGIN > _sqrt(a * (1.0 + TIE_BAND))


def settle(
    k: int,
    radius_m: float | None,
    matches: list[Match],
    rejects: list[Reject],
    fetch: Fetch,
    entries: list[UnitPosition],
) -> tuple[list[Ranked], dict[str, int]] | None:
    """(the ranked results, the excluded counts) if this fetch provably settles the query, else None."""
    radius_a = 0.0 if radius_m is None else _radius_term(radius_m)
    inside = matches if radius_m is None else [m for m in matches if _within(m[0], radius_a, radius_m)]
    inside.sort()
    if len(inside) >= k:
        top = exact_top(inside, k, entries)
        d_m, slot, a = top[-1]
        return (top, count_excluded(rejects, a, d_m, slot, entries)) if fetch.proves(a) else None
    if radius_m is not None:
        beyond = len(inside) < len(matches)
        if not fetch.proves(radius_a) or not (beyond or fetch.no_more_matches):
            return None
        excluded = count_excluded(rejects, radius_a, radius_m, None, entries)
        if beyond:
            excluded["out_of_radius"] = 1
        return exact_top(inside, len(inside), entries), excluded
    if not fetch.no_more_matches:
        return None
    if not inside:
        return [], {}
    top = exact_top(inside, len(inside), entries)
    d_m, slot, a = top[-1]
    return (top, count_excluded(rejects, a, d_m, slot, entries)) if fetch.proves(a) else None


def exact_top(ranked: list[Match], k: int, entries: list[UnitPosition]) -> list[Ranked]:
    """The first k of `ranked` (sorted by term), in metres, ordered exactly by (metres, unit_id).

    Terms within the tie band of the k-th may round to the same metres, where unit_id decides, so those
    just past k are drawn in before the exact sort.
    """
    if not ranked:
        return []
    end = k
    a_hi = ranked[k - 1][0] * (1.0 + TIE_BAND)
    while end < len(ranked) and ranked[end][0] <= a_hi:
        end += 1
    exact = [(_DIAMETER_M * _asin(_sqrt(a if a < 1.0 else 1.0)), slot, a) for a, slot in ranked[:end]]
    exact.sort()
    if len({t[0] for t in exact}) < len(exact):  # equal metres: unit_id decides, not the slot
        exact.sort(key=lambda t: (t[0], entries[t[1]].unit_id))
    return exact[:k]


def count_excluded(
    rejects: list[Reject], a: float, d_m: float, slot: int | None, entries: list[UnitPosition]
) -> dict[str, int]:
    """Rejects per reason ranked before (d_m, unit_id of slot), or at most d_m away when slot is None."""
    lo, hi = a * (1.0 - TIE_BAND), a * (1.0 + TIE_BAND)
    excluded: dict[str, int] = {}
    for a_r, slot_r, reason in rejects:
        if a_r >= lo:
            if a_r > hi:
                continue
            # Inside the tie band: compare in metres, then by unit_id, exactly as the ranking does.
            d_r = hav_to_m(a_r)
            if d_r > d_m or (
                d_r == d_m and slot is not None and entries[slot_r].unit_id > entries[slot].unit_id
            ):
                continue
        excluded[reason] = excluded.get(reason, 0) + 1
    return excluded


def _radius_term(radius_m: float) -> float:
    """The haversine term a = sin²(θ/2) of a distance (half a circumference or more gives 1)."""
    return math.sin(min(radius_m / _DIAMETER_M, math.pi / 2.0)) ** 2


def _within(a: float, radius_a: float, radius_m: float) -> bool:
    """hav_to_m(a) <= radius_m, computing metres only inside the tie band around radius_a."""
    if a < radius_a * (1.0 - TIE_BAND):
        return True
    return a <= radius_a * (1.0 + TIE_BAND) and hav_to_m(a) <= radius_m
