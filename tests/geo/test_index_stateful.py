"""Stateful property test: under any sequence of writes, PositionIndex answers exactly as a full scan does.

Positions mix San Francisco, both sides of the antimeridian, the polar caps, the whole globe and a few fixed
spots (exact ties), so exactness, wrap-around and tie-breaking by unit_id are all exercised.
"""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from geo import KINDS, STATUSES, PositionIndex, UnitPosition, haversine_m
from tests.geo.test_index import as_lists, brute_nearest

NOW_S = 100.0
UNIT_IDS = st.sampled_from([f"u{i}" for i in range(12)])
SKILLS = ["k9", "medic", "tow"]

sf = st.tuples(st.floats(-122.52, -122.35), st.floats(37.70, 37.83))
dateline = st.tuples(st.one_of(st.floats(179.9, 180.0), st.floats(-180.0, -179.9)), st.floats(-1.0, 1.0))
polar = st.tuples(st.floats(-180.0, 180.0), st.one_of(st.floats(84.0, 90.0), st.floats(-90.0, -84.0)))
globe = st.tuples(st.floats(-180.0, 180.0), st.floats(-90.0, 90.0))
spots = st.sampled_from([(-122.4, 37.8), (180.0, 0.0), (-180.0, 0.0), (0.0, 90.0), (42.0, 90.0), (0.0, 85.0)])
points = st.one_of(sf, dateline, polar, globe, spots)
invalid_points = st.sampled_from(
    [(math.nan, 0.0), (0.0, math.nan), (math.inf, 0.0), (0.0, -math.inf), (180.5, 0.0), (0.0, -90.5)]
)
maybe = st.none().__or__
status_sets = maybe(st.frozensets(st.sampled_from(sorted(STATUSES)), min_size=1))
kind_sets = maybe(st.frozensets(st.sampled_from(sorted(KINDS)), min_size=1))
skill_sets = maybe(st.frozensets(st.sampled_from(SKILLS), max_size=2))
radii = maybe(st.one_of(st.floats(0.0, 20_000.0), st.floats(0.0, 2.1e7)))


class IndexAgreesWithBruteForce(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.index = PositionIndex()
        self.model: dict[str, UnitPosition] = {}

    @rule(
        unit_id=UNIT_IDS,
        point=points,
        ts_s=st.integers(0, 100).map(float),
        status=maybe(st.sampled_from(sorted(STATUSES))),
        kind=maybe(st.sampled_from(sorted(KINDS))),
        skills=skill_sets,
        accuracy_m=maybe(st.floats(0.0, 200.0)),
    )
    def upsert(
        self,
        unit_id: str,
        point: tuple[float, float],
        ts_s: float,
        status: str | None,
        kind: str | None,
        skills: frozenset[str] | None,
        accuracy_m: float | None,
    ) -> None:
        old = self.model.get(unit_id)
        change = self.index.upsert(unit_id, *point, ts_s, status=status, kind=kind, skills=skills,
                                   accuracy_m=accuracy_m)  # fmt: skip
        assert change.old == old
        if old is not None and ts_s < old.ts_s:  # an older fix never moves a unit
            assert change.ignored and change.new is change.old
            return
        base = old or UnitPosition(unit_id, 0.0, 0.0, 0.0)
        expected = UnitPosition(unit_id, *point, ts_s, accuracy_m, status or base.status, kind or base.kind,
                                base.skills if skills is None else skills)  # fmt: skip
        assert change.new == expected and not change.ignored
        self.model[unit_id] = expected

    @rule(
        centre=points,
        count=st.integers(1, 40),
        spread_deg=st.sampled_from([0.0, 1e-7, 1e-3, 0.05, 3.0]),  # 0: all on one spot, exact ties
        seed=st.integers(0, 2**32 - 1),
    )
    def crowd(self, centre: tuple[float, float], count: int, spread_deg: float, seed: int) -> None:
        """Many units at once around a spot, so a search needs more than its first fetch."""
        rng = random.Random(seed)
        for _ in range(count):
            unit_id = f"c{rng.randrange(10**9)}"  # random, so id order differs from insertion order
            lon = (centre[0] + rng.uniform(-spread_deg, spread_deg) + 180.0) % 360.0 - 180.0
            lat = min(90.0, max(-90.0, centre[1] + rng.uniform(-spread_deg, spread_deg)))
            attrs = {"status": rng.choice(sorted(STATUSES)), "kind": rng.choice(sorted(KINDS)),
                     "skills": frozenset(rng.sample(SKILLS, rng.randrange(3))),
                     "accuracy_m": rng.choice([None, rng.uniform(0.0, 200.0)])}  # fmt: skip
            change = self.index.upsert(unit_id, lon, lat, float(rng.randrange(101)), **attrs)  # type: ignore[arg-type]
            assert change.new is not None
            self.model[unit_id] = change.new

    @rule(unit_id=UNIT_IDS, point=invalid_points)
    def upsert_invalid(self, unit_id: str, point: tuple[float, float]) -> None:
        with pytest.raises(ValueError):
            self.index.upsert(unit_id, *point, NOW_S)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), status=st.sampled_from(sorted(STATUSES)))
    def set_status(self, data: st.DataObject, status: str) -> None:
        unit_id = data.draw(st.sampled_from(sorted(self.model)))
        change = self.index.set_status(unit_id, status)
        self.model[unit_id] = self.model[unit_id]._replace(status=status)
        assert change.new == self.model[unit_id]

    @precondition(lambda self: self.model)
    @rule(data=st.data(), kind=maybe(st.sampled_from(sorted(KINDS))), skills=skill_sets)
    def set_attrs(self, data: st.DataObject, kind: str | None, skills: frozenset[str] | None) -> None:
        unit_id = data.draw(st.sampled_from(sorted(self.model)))
        self.index.set_attrs(unit_id, kind=kind, skills=skills)
        old = self.model[unit_id]
        self.model[unit_id] = old._replace(
            kind=kind or old.kind, skills=old.skills if skills is None else skills
        )

    @rule(unit_id=UNIT_IDS)
    def remove(self, unit_id: str) -> None:
        change = self.index.remove(unit_id)
        old = self.model.pop(unit_id, None)
        assert (change is None) if old is None else (change is not None and change.old == old)

    @rule(stale_copies=st.booleans())
    def rebuild(self, stale_copies: bool) -> None:
        """Bulk load the current state (optionally with older duplicates that must lose)."""
        entries = list(self.model.values())
        if stale_copies:
            entries += [u._replace(lon=-u.lon, ts_s=u.ts_s - 1.0) for u in entries]
        self.index.bulk_load(entries)

    @rule(
        point=points,
        k=st.integers(1, 6),
        statuses=status_sets,
        kinds=kind_sets,
        skills=skill_sets,
        max_age_s=maybe(st.floats(0.0, 100.0)),
        radius_m=radii,
        max_accuracy_m=maybe(st.floats(0.0, 150.0)),
    )
    def nearest(
        self,
        point: tuple[float, float],
        k: int,
        statuses: frozenset[str] | None,
        kinds: frozenset[str] | None,
        skills: frozenset[str] | None,
        max_age_s: float | None,
        radius_m: float | None,
        max_accuracy_m: float | None,
    ) -> None:
        filters = {"statuses": statuses, "kinds": kinds, "skills": skills, "max_age_s": max_age_s,
                   "now_s": NOW_S, "radius_m": radius_m, "max_accuracy_m": max_accuracy_m}  # fmt: skip
        got = as_lists(self.index.nearest(*point, k, **filters))  # type: ignore[arg-type]
        assert got == brute_nearest(self.model.values(), *point, k, **filters)  # type: ignore[arg-type]

    @rule(west=st.floats(-180.0, 180.0), east=st.floats(-180.0, 180.0), lats=st.tuples(globe, globe))
    def in_bbox(
        self, west: float, east: float, lats: tuple[tuple[float, float], tuple[float, float]]
    ) -> None:
        south, north = sorted((lats[0][1], lats[1][1]))
        got = sorted(u.unit_id for u in self.index.in_bbox(west, south, east, north))

        def inside(u: UnitPosition) -> bool:
            in_lon = west <= u.lon <= east if west <= east else (u.lon >= west or u.lon <= east)
            return in_lon and south <= u.lat <= north

        assert got == sorted(u.unit_id for u in self.model.values() if inside(u))

    @invariant()
    def same_content(self) -> None:
        assert len(self.index) == len(self.model)
        assert {u.unit_id: u for u in self.index} == self.model

    @invariant()
    def distances_are_haversine(self) -> None:
        if self.model:
            result = self.index.nearest(-122.4, 37.8, 3)
            for n in result.neighbors:
                assert n.distance_m == haversine_m(-122.4, 37.8, n.entry.lon, n.entry.lat)


TestIndexAgreesWithBruteForce = IndexAgreesWithBruteForce.TestCase
TestIndexAgreesWithBruteForce.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
