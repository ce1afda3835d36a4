"""The nearest search's inner parts: filters, the candidate scan, the completeness proof, exact ranking.

Candidates come from the tree in chord order (nearest first). Each is measured by its haversine term
a = sin²(θ/2), computed with the same operands and order as `haversine_m`, so metres are bit-identical to
it. Ranking by a ranks by metres, except that distinct terms can round to the same metres; within a tiny
band around a boundary the comparison is therefore redone in metres, then by unit_id, as the contract says.

This is the dispatcher's hot path (a query costs ~30 µs, about 60 % of it in the tree): plain tuples rather
than NamedTuples between the steps, and the scan stops as soon as the k-th match is proven. The dispatcher's
own query (a status filter at most, no radius) runs nearest_by_status, scan and settle fused with the
branches only other filters need left out (tests/geo/test_index_by_status.py checks it against both).
"""

from __future__ import annotations

import functools
import math
from array import array
from collections.abc import Sequence
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
Found = tuple[list[Match], list[Reject], dict[str, int], float, int, bool]
"""What scan found: matches, the rejects it measured, the status rejects it counted without measuring them
(by reason; all rank before the k-th match), the last term measured, how many fetched candidates passed the
status/kind/skill filters (-1 once proven: it no longer matters), and whether the scan proved the k-th
match (it stopped at a candidate beyond it)."""


class Filter(NamedTuple):
    """A query's filters, validated and in the form the scan wants (the clock comes with each query)."""

    statuses: frozenset[str] | None
    status_ok: bytes  # by status code: 1 = allowed (all ones without a status filter)
    kinds: frozenset[str] | None
    skills: frozenset[str]
    max_age_s: float | None
    max_accuracy_m: float | None
    check_entry: bool  # some filter needs the entry itself (kind, skills, age, accuracy)


@functools.lru_cache(maxsize=512)  # the same few filters are asked for all day
def make_filter(
    statuses: tuple[str, ...] | None,
    kinds: tuple[str, ...] | None,
    skills: tuple[str, ...],
    max_age_s: float | None,
    max_accuracy_m: float | None,
) -> Filter:
    """Validate a query's filters (ValueError for unknown statuses or kinds)."""
    status_set = None if statuses is None else frozenset(statuses)
    if status_set is not None and (unknown := status_set - STATUSES):
        raise ValueError(f"unknown statuses {sorted(unknown)}")
    kind_set = None if kinds is None else frozenset(kinds)
    if kind_set is not None and not kind_set <= KINDS:
        raise ValueError(f"unknown kinds {sorted(kind_set - KINDS)}")
    status_ok = bytes(status_set is None or s in status_set for s in STATUS_ORDER)
    check_entry = kind_set is not None or bool(skills) or max_age_s is not None or max_accuracy_m is not None
    return Filter(status_set, status_ok, kind_set, frozenset(skills), max_age_s, max_accuracy_m, check_entry)


def scan(
    slots: list[int],
    q: Sequence[float],
    flt: Filter,
    now_s: float,
    k: int,
    geo: array[float],
    codes: bytearray,
    entries: list[UnitPosition],
    lazy: bool,
) -> Found:
    """Measure and classify candidates in the tree's (chord) order until the k-th match is proven.

    Once k units matched, the first candidate beyond the k-th's tie band (with the proof margin) ends the
    pass: the tree hands out candidates nearest first, so none after it can rank before the k-th. q and
    geo rows are geo._tree.SpherePoint layouts (lon_rad, lat_rad, cos(lat), x, y, z). `lazy` (no
    radius) lets status rejects ranked clearly before the k-th go unmeasured: they are only counted.
    """
    # The dispatcher's innermost loop: flat arrays, locals, two sines a candidate, no calls.
    sin = math.sin
    q_lon, q_lat, q_cos = q[0], q[1], q[2]
    status_ok = flt.status_ok
    check_entry = flt.check_entry
    matches: list[Match] = []
    rejects: list[Reject] = []
    # Units failing the status filter before the (k-1)-th match are counted, not measured: they precede it
    # in the tree's order, so they rank before the k-th unless the two tie (then they are measured after all).
    skipped: dict[str, int] = {}
    lazy_until = k - 1 if lazy else 0
    stop_a = 2.0  # above every term (a <= 1) until k units matched
    a = 0.0
    static_fail = 0
    n = 0  # matches so far
    for slot in slots:
        code = codes[slot]
        if n < lazy_until and not status_ok[code]:
            status = _STATUS_REASON[code]
            skipped[status] = skipped.get(status, 0) + 1
            static_fail += 1
            continue
        b = slot * 6  # GEO_STRIDE
        # Same operands, in the same order, as haversine_m(q_lon, q_lat, lon, lat): identical rounding.
        s_dphi = sin((geo[b + 1] - q_lat) * 0.5)
        s_dlam = sin((geo[b] - q_lon) * 0.5)
        a = s_dphi * s_dphi + q_cos * geo[b + 2] * s_dlam * s_dlam
        if a > stop_a:
            return matches, rejects, skipped, a, -1, True  # proven: how many passed no longer matters
        if not status_ok[code]:
            rejects.append((a, slot, _STATUS_REASON[code]))
            static_fail += 1
        elif check_entry and (reason := _entry_reason(entries[slot], flt, now_s)) is not None:
            rejects.append((a, slot, reason))
            static_fail += reason in ("kind", "skills")
        else:
            matches.append((a, slot))
            n += 1
            if n == k:
                a_k = max(matches)[0]
                if skipped and not _clearly_before(matches[-2][0], a_k):
                    rejects += _measure_skipped(slots, matches[-2][1], q, geo, codes, status_ok)
                    skipped = {}  # a tie near the k-th: they are ranked exactly instead
                # proves()'s test for the k-th, squared (and rounded up a hair, safe side of the squaring)
                root = _sqrt(a_k * (1.0 + TIE_BAND)) + PROOF_MARGIN
                stop_a = root * root * (1.0 + 4e-16)
    if skipped and n < k:  # no k-th to rank them against: measure them
        rejects += _measure_skipped(slots, matches[-1][1] if n == k - 1 else -1, q, geo, codes, status_ok)
        skipped = {}
        a = max(a, *(r[0] for r in rejects))
    return matches, rejects, skipped, a, len(slots) - static_fail, False


def nearest_by_status(
    slots: list[int],
    q: Sequence[float],
    status_ok: bytes,
    k: int,
    geo: array[float],
    codes: bytearray,
    entries: list[UnitPosition],
    exhausted: bool,
    bound: int,
) -> tuple[list[Ranked], dict[str, int]] | None:
    """scan then settle, fused, for the dispatcher's query: a status filter at most, no radius.

    The same steps, proofs and rounding as scan (lazy) followed by settle; only the branches that other
    filters need are gone, and nothing is packed in between. bound: how many units pass the status filter.
    """
    sin = math.sin
    q_lon, q_lat, q_cos = q[0], q[1], q[2]
    matches: list[Match] = []
    rejects: list[Reject] = []
    skipped: dict[str, int] = {}
    lazy_until = k - 1
    stop_a = 2.0
    a = 0.0
    n = 0
    proven = False
    for slot in slots:
        code = codes[slot]
        if not status_ok[code]:
            if n < lazy_until:
                reason = _STATUS_REASON[code]
                skipped[reason] = skipped.get(reason, 0) + 1
                continue
            b = slot * 6  # GEO_STRIDE
            s_dphi = sin((geo[b + 1] - q_lat) * 0.5)
            s_dlam = sin((geo[b] - q_lon) * 0.5)
            a = s_dphi * s_dphi + q_cos * geo[b + 2] * s_dlam * s_dlam
            if a > stop_a:
                proven = True
                break
            rejects.append((a, slot, _STATUS_REASON[code]))
            continue
        b = slot * 6
        s_dphi = sin((geo[b + 1] - q_lat) * 0.5)
        s_dlam = sin((geo[b] - q_lon) * 0.5)
        a = s_dphi * s_dphi + q_cos * geo[b + 2] * s_dlam * s_dlam
        if a > stop_a:
            proven = True
            break
        matches.append((a, slot))
        n += 1
        if n == k:
            a_k = max(matches)[0]
            if skipped and not _clearly_before(matches[-2][0], a_k):
                rejects += _measure_skipped(slots, matches[-2][1], q, geo, codes, status_ok)
                skipped = {}
            root = _sqrt(a_k * (1.0 + TIE_BAND)) + PROOF_MARGIN
            stop_a = root * root * (1.0 + 4e-16)
    if n >= k:
        matches.sort()
        top = exact_top(matches, k, entries)
        if not (proven or exhausted or proves(a, top[-1][2])):
            return None
    elif exhausted or n >= bound:  # every unit, or every unit of an allowed status, was fetched
        if not matches:
            return [], {}
        if skipped:  # no k-th to rank them against: measure them
            rejects += _measure_skipped(slots, matches[-1][1] if n == k - 1 else -1, q, geo, codes, status_ok)
            skipped = {}
            a = max(a, *(r[0] for r in rejects))
        matches.sort()
        top = exact_top(matches, n, entries)
        if not (exhausted or proves(a, top[-1][2])):
            return None
    else:
        return None
    d_m, slot, a_top = top[-1]
    return top, count_excluded(rejects, a_top, d_m, slot, entries, skipped)


def _clearly_before(a: float, a_k: float) -> bool:
    """Whether everything the tree handed out up to a candidate of term `a` ranks before a term `a_k`
    (outside its tie band, with the proof margin for the tree's own rounding)."""
    return _sqrt(a) + PROOF_MARGIN < _sqrt(a_k * (1.0 - TIE_BAND))


def _measure_skipped(
    slots: list[int], until: int, q: Sequence[float], geo: array[float], codes: bytearray, status_ok: bytes
) -> list[Reject]:
    """The status rejects scan counted without measuring (those fetched before slot `until`, which is the
    (k-1)-th match, or all of them when `until` is -1), measured exactly as scan measures."""
    sin = math.sin
    measured: list[Reject] = []
    for slot in slots:
        if slot == until:
            break
        code = codes[slot]
        if not status_ok[code]:
            b = slot * 6
            s_dphi = sin((geo[b + 1] - q[1]) * 0.5)
            s_dlam = sin((geo[b] - q[0]) * 0.5)
            a = s_dphi * s_dphi + q[2] * geo[b + 2] * s_dlam * s_dlam
            measured.append((a, slot, _STATUS_REASON[code]))
    return measured


def _entry_reason(e: UnitPosition, flt: Filter, now_s: float) -> str | None:
    """The first non-status filter the entry fails, or None."""
    if flt.kinds is not None and e.kind not in flt.kinds:
        return "kind"
    if flt.skills and not flt.skills <= e.skills:
        return "skills"
    if flt.max_age_s is not None and now_s - e.ts_s > flt.max_age_s:
        return "stale"
    if flt.max_accuracy_m is not None and (e.accuracy_m is None or e.accuracy_m > flt.max_accuracy_m):
        return "accuracy"
    return None


def proves(last_a: float, a: float) -> bool:
    """True when nothing past a candidate of term `last_a` can have a term within the tie band of `a`.

    The tree fetches in chord order and chord = 2·sqrt(a) up to rounding (~1e-16, far inside the margin),
    so everything it did not hand out has sqrt(term) >= sqrt(last_a) - margin.
    """
    return _sqrt(last_a) - PROOF_MARGIN > _sqrt(a * (1.0 + TIE_BAND))


def settle(
    k: int,
    radius_m: float | None,
    found: Found,
    exhausted: bool,
    no_more_matches: bool,
    entries: list[UnitPosition],
) -> tuple[list[Ranked], dict[str, int]] | None:
    """(the ranked results, the excluded counts) if this fetch provably settles the query, else None.

    exhausted: every unit was fetched; no_more_matches: no unfetched unit can pass the status/kind/skill
    filters. With radius_m and fewer than k matches inside it, `out_of_radius` counts the matching units
    beyond the radius that would have filled the missing places (at most k minus the results).
    """
    matches, rejects, skipped, last_a, _, proven = found
    matches.sort()
    if len(matches) >= k:
        top = exact_top(matches, k, entries)
        if not (proven or exhausted or proves(last_a, top[-1][2])):
            return None
    elif exhausted or no_more_matches:
        top = exact_top(matches, len(matches), entries)
        if top and not (exhausted or proves(last_a, top[-1][2])):
            return None
    else:
        return None
    if radius_m is not None and (len(top) < k or top[-1][0] > radius_m):
        inside = [t for t in top if t[0] <= radius_m]
        radius_a = _radius_term(radius_m)
        if not (exhausted or proves(last_a, radius_a)):  # the rejects within the radius must all be seen
            return None
        excluded = count_excluded(rejects, radius_a, radius_m, None, entries, skipped)
        if beyond := len(top) - len(inside):
            excluded["out_of_radius"] = beyond
        return inside, excluded
    if not top:
        return top, {}
    d_m, slot, a = top[-1]
    return top, count_excluded(rejects, a, d_m, slot, entries, skipped)


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
    rejects: list[Reject],
    a: float,
    d_m: float,
    slot: int | None,
    entries: list[UnitPosition],
    excluded: dict[str, int],
) -> dict[str, int]:
    """`excluded` plus the rejects per reason ranked before (d_m, unit_id of slot), or at most d_m away
    when slot is None (it is updated in place and returned)."""
    lo, hi = a * (1.0 - TIE_BAND), a * (1.0 + TIE_BAND)
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
