"""The live position index: a spatial tree plus a by-id map kept in step (the shape of Tile38's collection).

nearest() is exact in metres: the tree (see geo._tree) yields candidates in great-circle order, each is
measured with the haversine formula (bit-identical to `haversine_m`), and a rounding margin guards the proof
that nothing unfetched is nearer. Filters run inside the search: the tree is asked for more than k
candidates (sized from live per-status/kind/skill counts) and again for more if too few matched. So every
unit nearer than the k-th result has been seen, which makes the `excluded` counts a by-product.

Why one tree and not a second one holding only dispatchable units: the exact `excluded` counts need every
unit nearer than the k-th match anyway, and side by side (benchmarks/bench_index.py's fleet) a k-NN of 6 in
a tree of the 40 % available plus the main tree's k-NN of 13 for the counts cost 1.6x the one k-NN of 17
(100k and 1M units), while every move of an available unit would pay a second delete and insert.

Why not a partition either (each unit in exactly one tree by status group, the available and the rest, so a
move stays one delete and insert): the filtered query would do its k-NN of 5 in the available tree and get
the counts from a box query around the 5th's chord ball in the other. bench_index times those tree calls
alone ("Tree calls alone"): at 100k units the one tree's k-NN of the first fetch (18 candidates) costs
17.3 µs p50, the available tree's k-NN of 5 plus the rest tree's Index_Intersects_id 24.7 µs, and even
Index_Intersects_count (whose box count is not the ball's, so not exact) 24.1 µs; at 1M 27.8 vs 35.1 and
33.7 µs. libspatialindex pays ~10 µs a call whatever it returns (it deserialises every node it visits and
allocates an entry for each child of each leaf), and a candidate more costs only ~0.45 µs, so one k-NN of
~2.5x k beats any two calls: two tree calls already cost more than the bare tree's unfiltered k-NN of 5
through rtree's public API (~20 µs at 100k, ~31 µs at 1M), the yardstick of issue 16's goal.

So the tree stays one, and the dispatcher's query (a status filter at most, nothing else, no radius) takes
a fused path (_search.nearest_by_status: scan and settle in one loop, nothing packed in between), and the
tree's k-NN is called without ctypes argument conversion. Side by side query by query (bench_index, p50,
ratio to the bare unfiltered k-NN of the same run), that query went from 34.4 µs (1.55x) to 30.6 µs
(1.45x) at 100k and from 47.0 µs (1.38x) to 44.1 µs (1.34x) at 1M. Of the ~31 µs at 100k, ~19 are the
tree call and ~11 the Python around it (measuring ~8 candidates of ~13, ranking 5 in metres, counting); the
1.2x goal would need that Python under ~5 µs, which CPython does not reach without leaving out a step of
the proof.

Slots are numbered along a Z-order curve at bulk load (geo._tree.z_order) so a search's candidates share
cache lines.

One PositionIndex belongs to one thread (the dispatcher's loop).
"""

from __future__ import annotations

import itertools
import math
from array import array
from collections import Counter
from collections.abc import Collection, Iterable, Iterator

import numpy as np

from geo import _search
from geo._tree import GEO_STRIDE, SpherePoint, SphereTree, sphere_point, z_order
from geo.bbox import valid_lon_lat
from geo.units import (
    KINDS,
    STATUS_ORDER,
    VACANT,
    Change,
    NearestResult,
    Neighbor,
    UnitPosition,
    check_attrs,
)

# First fetch = ceil(k / expected share of matching units * _FETCH_SLACK) + 2. Raising it makes a second
# fetch rarer but every first fetch dearer (~1 µs a candidate); 1.2 had the best mean in the benchmark.
_FETCH_SLACK = 1.2
_STATUS_CODE = {s: i for i, s in enumerate(STATUS_ORDER)}
_ALL_OK = bytes([1] * len(STATUS_ORDER))  # status_ok without a status filter
_new_tuple = tuple.__new__  # builds a NamedTuple without its Python-level __new__ (~0.2 µs each)


class PositionIndex:
    """Latest position of every unit: a spatial tree and a by-id map, always changed together.

    Derived state: the database is the truth, and `bulk_load` rebuilds this from it at start.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._tree = SphereTree()
        self._slots: dict[str, int] = {}
        # Per-slot storage; the tree holds slot numbers, since libspatialindex wants integer ids.
        self._entries: list[UnitPosition] = []
        self._geo = array("d")  # GEO_STRIDE doubles a slot (see geo._tree.SpherePoint)
        self._codes = bytearray()  # status code a slot
        self._free_slots: list[int] = []
        # Live counts: they size a search's first fetch and let it stop once no unseen unit can match.
        self._status_n = dict.fromkeys(STATUS_ORDER, 0)
        self._kind_n = dict.fromkeys(KINDS, 0)
        self._skill_n: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, unit_id: object) -> bool:
        return unit_id in self._slots

    def __iter__(self) -> Iterator[UnitPosition]:
        entries = self._entries
        return (entries[slot] for slot in self._slots.values())

    def get(self, unit_id: str) -> UnitPosition | None:
        """The unit's entry, or None when it is not indexed."""
        slot = self._slots.get(unit_id)
        return None if slot is None else self._entries[slot]

    def count_by_status(self) -> dict[str, int]:
        """Number of indexed units per status (every status present, zeros included)."""
        return dict(self._status_n)

    def upsert(
        self,
        unit_id: str,
        lon: float,
        lat: float,
        ts_s: float,
        *,
        accuracy_m: float | None = None,
        speed_mps: float | None = None,
        heading_deg: float | None = None,
        device_id: str | None = None,
        status: str | None = None,
        kind: str | None = None,
        skills: Iterable[str] | None = None,
    ) -> Change:
        """Insert a unit or move it to a new fix; the fix's own fields (accuracy, speed, ...) replace the old.

        status, kind and skills keep their value when not given (a new unit: off_duty, police, none). A fix
        older than the current one (ts_s < current ts_s) is ignored whole, attributes included, and
        returns Change(old, old). ValueError for invalid coordinates, a non-finite ts_s, or an unknown
        status or kind; nothing is changed then.
        """
        # Chained comparisons are False for NaN, so this one test also rejects NaN and ±inf.
        if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
            raise ValueError(f"invalid coordinates lon={lon!r} lat={lat!r} for unit {unit_id!r}")
        if not math.isfinite(ts_s):
            raise ValueError(f"non-finite ts_s={ts_s!r} for unit {unit_id!r}")
        slot = self._slots.get(unit_id)
        old = VACANT if slot is None else self._entries[slot]
        if ts_s < old.ts_s:
            return Change(old, old)
        new = UnitPosition(
            unit_id, lon, lat, ts_s, accuracy_m,
            old.status if status is None else status,
            old.kind if kind is None else kind,
            old.skills if skills is None else frozenset(skills),
            speed_mps, heading_deg, device_id,
        )  # fmt: skip
        if slot is None:
            self._add(new)
            return Change(None, new)
        if status is not None or kind is not None or skills is not None:
            self._recount(slot, old, new)
        if lon != old.lon or lat != old.lat:  # a parked unit re-reporting its spot skips the tree
            self._move(slot, sphere_point(lon, lat))
        self._entries[slot] = new
        return Change(old, new)

    def set_status(self, unit_id: str, status: str) -> Change:
        """Change a unit's status, not its position. KeyError if not indexed, ValueError if unknown status."""
        slot = self._slots[unit_id]
        old = self._entries[slot]
        return self._replace(slot, old, old._replace(status=status))

    def set_attrs(
        self, unit_id: str, *, kind: str | None = None, skills: Iterable[str] | None = None
    ) -> Change:
        """Change a unit's kind and/or skills, not its position. KeyError if not indexed."""
        slot = self._slots[unit_id]
        old = self._entries[slot]
        new = old._replace(
            kind=old.kind if kind is None else kind,
            skills=old.skills if skills is None else frozenset(skills),
        )
        return self._replace(slot, old, new)

    def remove(self, unit_id: str) -> Change | None:
        """Drop a unit; returns Change(old, None), or None when it was not indexed."""
        slot = self._slots.pop(unit_id, None)
        if slot is None:
            return None
        old = self._entries[slot]
        base = slot * GEO_STRIDE
        self._tree.delete(slot, *self._geo[base + 3 : base + 6])
        self._entries[slot] = VACANT
        self._free_slots.append(slot)
        self._count(old, -1)
        return Change(old, None)

    def bulk_load(self, entries: Iterable[UnitPosition]) -> None:
        """Replace the whole content with `entries`, using rtree's stream (STR) bulk loading.

        Every entry is validated first (ValueError, index unchanged). For a repeated unit_id the newest fix
        wins, as with upsert.
        """
        latest: dict[str, UnitPosition] = {}
        for entry in entries:
            if type(entry.skills) is not frozenset:
                entry = entry._replace(skills=frozenset(entry.skills))
            if not (valid_lon_lat(entry.lon, entry.lat) and math.isfinite(entry.ts_s)):
                raise ValueError(f"invalid fix in bulk load: {entry!r}")
            check_attrs(entry)
            current = latest.get(entry.unit_id)
            if current is None or entry.ts_s >= current.ts_s:
                latest[entry.unit_id] = entry
        self._reset()
        self._entries = _in_z_order(list(latest.values()))
        self._slots = {e.unit_id: slot for slot, e in enumerate(self._entries)}
        self._codes = bytearray(_STATUS_CODE[e.status] for e in self._entries)
        for e in self._entries:
            self._geo.extend(sphere_point(e.lon, e.lat))
        self._status_n.update(Counter(e.status for e in self._entries))
        self._kind_n.update(Counter(e.kind for e in self._entries))
        self._skill_n = dict(Counter(itertools.chain.from_iterable(e.skills for e in self._entries)))
        if self._entries:  # libspatialindex rejects an empty stream
            geo = self._geo
            self._tree = SphereTree(
                (slot, (geo[b + 3], geo[b + 4], geo[b + 5]) * 2, None)
                for slot, b in enumerate(range(0, len(geo), GEO_STRIDE))
            )

    def in_bbox(self, min_lon: float, min_lat: float, max_lon: float, max_lat: float) -> list[UnitPosition]:
        """Units whose stored lon/lat lie in the box (edges included), in no particular order.

        min_lon > max_lon means the box crosses the antimeridian.
        """
        if not (valid_lon_lat(min_lon, min_lat) and valid_lon_lat(max_lon, max_lat) and min_lat <= max_lat):
            raise ValueError(f"invalid box {(min_lon, min_lat, max_lon, max_lat)!r}")
        ranges = [(min_lon, max_lon)] if min_lon <= max_lon else [(min_lon, 180.0), (-180.0, max_lon)]
        found: list[UnitPosition] = []
        for west, east in ranges:
            for slot in self._tree.in_rect(west, min_lat, east, max_lat):
                e = self._entries[slot]
                if west <= e.lon <= east and min_lat <= e.lat <= max_lat:
                    found.append(e)
        return found

    def _add(self, entry: UnitPosition) -> None:
        check_attrs(entry)
        g = sphere_point(entry.lon, entry.lat)
        code = _STATUS_CODE[entry.status]
        if self._free_slots:
            slot = self._free_slots.pop()
            self._entries[slot] = entry
            self._geo[slot * GEO_STRIDE : (slot + 1) * GEO_STRIDE] = array("d", g)
            self._codes[slot] = code
        else:
            slot = len(self._entries)
            self._entries.append(entry)
            self._geo.extend(g)
            self._codes.append(code)
        self._tree.insert(slot, g[3], g[4], g[5])
        self._slots[entry.unit_id] = slot
        self._count(entry, +1)

    def _move(self, slot: int, g: SpherePoint) -> None:
        geo = self._geo
        base = slot * GEO_STRIDE
        self._tree.delete(slot, geo[base + 3], geo[base + 4], geo[base + 5])
        self._tree.insert(slot, g[3], g[4], g[5])
        geo[base], geo[base + 1], geo[base + 2], geo[base + 3], geo[base + 4], geo[base + 5] = g

    def _replace(self, slot: int, old: UnitPosition, new: UnitPosition) -> Change:
        self._recount(slot, old, new)
        self._entries[slot] = new
        return Change(old, new)

    def _recount(self, slot: int, old: UnitPosition, new: UnitPosition) -> None:
        """Validate changed attributes and move the unit between the live counts."""
        check_attrs(new)
        if old.status != new.status or old.kind != new.kind or old.skills != new.skills:
            self._count(old, -1)
            self._count(new, +1)
            self._codes[slot] = _STATUS_CODE[new.status]

    def _count(self, entry: UnitPosition, delta: int) -> None:
        self._status_n[entry.status] += delta
        self._kind_n[entry.kind] += delta
        for skill in entry.skills:
            left = self._skill_n.get(skill, 0) + delta
            if left:
                self._skill_n[skill] = left
            else:
                del self._skill_n[skill]

    # ---- nearest -----------------------------------------------------------------------------------------

    def nearest(
        self,
        lon: float,
        lat: float,
        k: int,
        *,
        statuses: Collection[str] | None = None,
        kinds: Collection[str] | None = None,
        skills: Collection[str] | None = None,
        max_age_s: float | None = None,
        now_s: float | None = None,
        radius_m: float | None = None,
        max_accuracy_m: float | None = None,
    ) -> NearestResult:
        """The k nearest units matching every filter, by great-circle distance in metres, exactly.

        statuses, kinds: allowed values. skills: all required. max_age_s needs now_s (stale when
        now_s - ts_s > max_age_s). max_accuracy_m drops fixes with larger or unknown accuracy. radius_m
        keeps distance_m <= radius_m. Cost grows with the number of units nearer than the k-th match,
        since each is examined (and counted in `excluded`).
        """
        if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
            raise ValueError(f"invalid query point lon={lon!r} lat={lat!r}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k!r}")
        if radius_m is not None and not radius_m >= 0.0:
            raise ValueError(f"radius_m must be >= 0, got {radius_m!r}")
        if max_age_s is not None and now_s is None:
            raise ValueError("max_age_s needs now_s (the caller's clock)")
        if (
            kinds is None
            and skills is None
            and max_age_s is None
            and radius_m is None
            and max_accuracy_m is None
        ):
            return self._nearest_by_status(lon, lat, k, statuses)
        flt = _search.make_filter(
            None if statuses is None else tuple(statuses),
            None if kinds is None else tuple(kinds),
            () if skills is None else tuple(skills),
            max_age_s,
            max_accuracy_m,
        )
        n = len(self._slots)
        bound, share = self._match_bound(flt)
        # Enough candidates that k should match, and two more so the fetch can usually prove itself
        # complete; a short fetch costs a second, larger one (see the benchmark for the trade-off).
        want = min(n, math.ceil(k / max(share, 0.01) * _FETCH_SLACK) + 2)
        q = sphere_point(lon, lat)
        tree, entries, now = self._tree, self._entries, now_s or 0.0
        while True:
            slots = tree.nearest(q[3], q[4], q[5], want) if n else []
            found = _search.scan(slots, q, flt, now, k, self._geo, self._codes, entries, radius_m is None)
            exhausted = len(slots) >= n
            settled = _search.settle(k, radius_m, found, exhausted, found[4] >= bound, entries)
            if settled is not None:
                top, excluded = settled
                neighbors = [_new_tuple(Neighbor, (entries[s], d)) for d, s, _ in top]
                return _new_tuple(NearestResult, (neighbors, excluded))
            want = min(n, _next_fetch(want, k, len(found[0]), len(slots)))

    def _nearest_by_status(
        self, lon: float, lat: float, k: int, statuses: Collection[str] | None
    ) -> NearestResult:
        """nearest() for the dispatcher's query (a status filter at most, nothing else): the same search
        and proofs (see _search.nearest_by_status), with less around it."""
        n = len(self._slots)
        if statuses is None:
            status_ok, bound = _ALL_OK, n
        else:
            flt = _search.make_filter(tuple(statuses), None, (), None, None)
            status_ok, bound = flt.status_ok, 0
            status_n = self._status_n
            for status in flt.statuses:  # type: ignore[union-attr]
                bound += status_n[status]
        if not n:
            return _new_tuple(NearestResult, ([], {}))
        want = min(n, math.ceil(k * n / max(bound, 0.01 * n) * _FETCH_SLACK) + 2)
        q = sphere_point(lon, lat)
        tree, entries, geo, codes = self._tree, self._entries, self._geo, self._codes
        while True:
            slots = tree.nearest(q[3], q[4], q[5], want)
            fetched = len(slots)
            settled = _search.nearest_by_status(
                slots, q, status_ok, k, geo, codes, entries, fetched >= n, bound
            )
            if settled is not None:
                top, excluded = settled
                return _new_tuple(
                    NearestResult, ([_new_tuple(Neighbor, (entries[s], d)) for d, s, _ in top], excluded)
                )
            matched = 0
            for slot in slots:
                matched += status_ok[codes[slot]]
            want = min(n, _next_fetch(want, k, matched, fetched))

    def _match_bound(self, flt: _search.Filter) -> tuple[int, float]:
        """An upper bound on units passing the status/kind/skill filters, and the share expected to pass."""
        n = len(self._slots)
        bound, share = n, 1.0
        # Plain loops: this runs on every query, and generators cost more than the few lookups they do.
        if flt.statuses is not None:
            count = 0
            for status in flt.statuses:
                count += self._status_n[status]
            bound, share = count, count / max(n, 1)
        if flt.kinds is not None:
            count = 0
            for kind in flt.kinds:
                count += self._kind_n[kind]
            bound, share = min(bound, count), share * count / max(n, 1)
        for skill in flt.skills:
            count = self._skill_n.get(skill, 0)
            bound, share = min(bound, count), share * count / max(n, 1)
        return bound, share


def _in_z_order(entries: list[UnitPosition]) -> list[UnitPosition]:
    """The entries along geo._tree.z_order, so units near each other get slots near each other."""
    if len(entries) < 2:
        return entries
    n = len(entries)
    order = z_order(
        np.fromiter((e.lon for e in entries), dtype=np.float64, count=n),
        np.fromiter((e.lat for e in entries), dtype=np.float64, count=n),
    )
    return [entries[i] for i in order.tolist()]


def _next_fetch(want: int, k: int, matched: int, fetched: int) -> int:
    """How many candidates to ask for after a fetch of `want` that did not settle the query."""
    if matched <= k:  # too few matched: extrapolate from the share seen so far
        seen_share = max(matched, 0.5) / max(fetched, 1)
        return max(2 * want, math.ceil((k + 2) / seen_share * _FETCH_SLACK))
    return want + max(8, want // 2)  # enough matched, but the k-th sat too near the fetch's edge
