"""PositionIndex by example: writes, validation, filters, exclusion counts, the antimeridian, high latitudes,
and real taxi positions checked against a brute-force scan."""

from __future__ import annotations

import csv
import gzip
import math
import random
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rtree import index as rtree_index

from geo import STATUSES, NearestResult, PositionIndex, UnitPosition, _search, haversine_m

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CABS_1H = SHARED_DATA / "sf_cabspotting_2008-05-30_1h_pdt1700.csv.gz"


def brute_nearest(
    units: Iterable[UnitPosition],
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
) -> tuple[list[tuple[str, float]], dict[str, int]]:
    """The specification of PositionIndex.nearest, as a full scan: ([(unit_id, distance_m)], excluded)."""

    def reason(u: UnitPosition) -> str | None:
        if statuses is not None and u.status not in statuses:
            return f"status:{u.status}"
        if kinds is not None and u.kind not in kinds:
            return "kind"
        if skills and not set(skills) <= u.skills:
            return "skills"
        if max_age_s is not None and now_s is not None and now_s - u.ts_s > max_age_s:
            return "stale"
        if max_accuracy_m is not None and (u.accuracy_m is None or u.accuracy_m > max_accuracy_m):
            return "accuracy"
        return None

    ranked = sorted((haversine_m(lon, lat, u.lon, u.lat), u.unit_id, reason(u)) for u in units)
    matches = [(d_m, uid) for d_m, uid, why in ranked if why is None]
    inside = [m for m in matches if radius_m is None or m[0] <= radius_m]
    top = inside[:k]
    if len(top) == k or radius_m is None:
        counted = [why for d_m, uid, why in ranked if why is not None and top and (d_m, uid) < top[-1]]
    else:
        counted = [why for d_m, _, why in ranked if why is not None and d_m <= radius_m]
    excluded = dict(Counter(counted))
    if radius_m is not None and (beyond := min(k, len(matches)) - len(top)) > 0:
        excluded["out_of_radius"] = beyond  # matching units beyond the radius that would fill the places
    return [(uid, d_m) for d_m, uid in top], excluded


def index_of(units: list[UnitPosition], bulk: bool) -> PositionIndex:
    """An index of `units`, bulk-loaded or inserted one by one (the two ways an index is built)."""
    index = PositionIndex()
    if bulk:
        index.bulk_load(units)
    else:
        for u in units:
            index.upsert(u.unit_id, u.lon, u.lat, u.ts_s, status=u.status)
    return index


def as_lists(result: NearestResult) -> tuple[list[tuple[str, float]], dict[str, int]]:
    return [(n.entry.unit_id, n.distance_m) for n in result.neighbors], result.excluded


def ids(result: NearestResult) -> list[str]:
    return [n.entry.unit_id for n in result.neighbors]


# ---- writes --------------------------------------------------------------------------------------------


def test_insert_get_iterate_remove() -> None:
    index = PositionIndex()
    change = index.upsert("u1", -122.4, 37.8, 100.0, status="available", kind="auxiliary", skills=["k9"])
    assert change.old is None and change.new == index.get("u1")
    assert change.new == UnitPosition(
        "u1", -122.4, 37.8, 100.0, None, "available", "auxiliary", frozenset({"k9"})
    )
    index.upsert("u2", -122.41, 37.8, 100.0)
    assert len(index) == 2 and "u1" in index and "zz" not in index
    assert {u.unit_id for u in index} == {"u1", "u2"}
    assert index.get("u2") == UnitPosition("u2", -122.41, 37.8, 100.0)  # defaults: off_duty, police
    removed = index.remove("u1")
    assert removed is not None and removed.old == change.new and removed.new is None
    assert index.remove("u1") is None and index.get("u1") is None and len(index) == 1
    assert ids(index.nearest(-122.4, 37.8, 5)) == ["u2"]


def test_a_move_keeps_attributes_and_replaces_the_fix_fields() -> None:
    index = PositionIndex()
    index.upsert("u1", 0.0, 0.0, 1.0, accuracy_m=5.0, speed_mps=3.0, heading_deg=90.0, device_id="phone",
                 status="busy", skills={"first_aid"})  # fmt: skip
    change = index.upsert("u1", 0.001, 0.0, 2.0)
    assert change.new == UnitPosition("u1", 0.001, 0.0, 2.0, None, "busy", "police", frozenset({"first_aid"}))
    assert not change.ignored


def test_an_older_fix_never_moves_a_unit() -> None:
    index = PositionIndex()
    first = index.upsert("u1", 10.0, 10.0, 100.0, status="available").new
    late = index.upsert("u1", 20.0, 20.0, 99.0, status="busy")
    assert late.ignored and late.old is first and late.new is first
    assert index.get("u1") == first
    assert ids(index.nearest(20.0, 20.0, 1)) == ["u1"]
    assert index.nearest(20.0, 20.0, 1).neighbors[0].distance_m == haversine_m(20.0, 20.0, 10.0, 10.0)
    same_time = index.upsert("u1", 11.0, 11.0, 100.0)  # equal timestamps are accepted (a replay)
    assert not same_time.ignored and index.get("u1") == same_time.new


@pytest.mark.parametrize(
    ("lon", "lat"),
    [(math.nan, 0.0), (0.0, math.nan), (math.inf, 0.0), (0.0, -math.inf), (180.001, 0.0), (-180.5, 0.0),
     (0.0, 90.0001), (0.0, -91.0)],
)  # fmt: skip
def test_invalid_coordinates_never_enter_the_index(lon: float, lat: float) -> None:
    index = PositionIndex()
    with pytest.raises(ValueError):
        index.upsert("bad", lon, lat, 1.0)
    assert "bad" not in index and len(index) == 0
    index.upsert("good", 1.0, 1.0, 1.0)
    with pytest.raises(ValueError):
        index.upsert("good", lon, lat, 2.0)
    assert index.get("good") == UnitPosition("good", 1.0, 1.0, 1.0)
    # A NaN box in an rtree is "nearest" to every query; here the only unit stays the only answer.
    assert as_lists(index.nearest(0.0, 0.0, 5)) == ([("good", haversine_m(0.0, 0.0, 1.0, 1.0))], {})


def test_non_finite_timestamp_and_unknown_values_are_rejected() -> None:
    index = PositionIndex()
    for bad_ts in (math.nan, math.inf):
        with pytest.raises(ValueError):
            index.upsert("u1", 0.0, 0.0, bad_ts)
    with pytest.raises(ValueError):
        index.upsert("u1", 0.0, 0.0, 1.0, status="napping")
    with pytest.raises(ValueError):
        index.upsert("u1", 0.0, 0.0, 1.0, kind="helicopter")
    assert len(index) == 0
    index.upsert("u1", 0.0, 0.0, 1.0, status="available")
    with pytest.raises(ValueError):
        index.set_status("u1", "napping")
    with pytest.raises(ValueError):
        index.upsert("u1", 1.0, 1.0, 2.0, status="napping")
    assert index.get("u1") == UnitPosition("u1", 0.0, 0.0, 1.0, status="available")
    with pytest.raises(ValueError):
        index.nearest(0.0, 0.0, 1, statuses=["availble"])
    with pytest.raises(ValueError):
        index.nearest(0.0, 0.0, 1, kinds=["tank"])


def test_set_status_and_attrs_change_filters_not_position() -> None:
    index = PositionIndex()
    index.upsert("u1", 0.0, 0.0, 1.0, status="available")
    change = index.set_status("u1", "busy")
    assert change.old is not None and change.old.status == "available"
    assert change.new == UnitPosition("u1", 0.0, 0.0, 1.0, status="busy")
    change = index.set_attrs("u1", kind="vehicle", skills=["tow"])
    assert change.new == UnitPosition(
        "u1", 0.0, 0.0, 1.0, status="busy", kind="vehicle", skills=frozenset({"tow"})
    )
    assert index.count_by_status()["busy"] == 1 and index.count_by_status()["available"] == 0
    assert ids(index.nearest(0.0, 0.0, 1, statuses=["busy"], kinds=["vehicle"], skills=["tow"])) == ["u1"]
    with pytest.raises(KeyError):
        index.set_status("nobody", "busy")
    with pytest.raises(KeyError):
        index.set_attrs("nobody", kind="police")


def test_bulk_load_replaces_everything_and_keeps_the_newest_fix() -> None:
    index = PositionIndex()
    index.upsert("old", 5.0, 5.0, 1.0)
    index.bulk_load(
        [
            UnitPosition("a", 1.0, 1.0, 10.0, status="available"),
            UnitPosition("a", 2.0, 2.0, 20.0, status="busy"),
            UnitPosition("a", 3.0, 3.0, 15.0),
            UnitPosition("b", -1.0, -1.0, 10.0, skills=frozenset({"k9"})),
        ]
    )
    assert "old" not in index and len(index) == 2
    assert index.get("a") == UnitPosition("a", 2.0, 2.0, 20.0, status="busy")
    assert index.count_by_status()["busy"] == 1 and index.count_by_status()["off_duty"] == 1
    with pytest.raises(ValueError):
        index.bulk_load([UnitPosition("c", 0.0, 0.0, 1.0), UnitPosition("d", math.nan, 0.0, 1.0)])
    assert len(index) == 2 and "c" not in index  # unchanged
    index.bulk_load([])
    assert len(index) == 0 and index.nearest(0.0, 0.0, 3).neighbors == []
    index.upsert("e", 0.0, 0.0, 1.0)
    assert ids(index.nearest(0.0, 0.0, 3)) == ["e"]


def test_moves_and_removals_after_bulk_load_agree_with_brute_force() -> None:
    """Bulk-loaded nodes sit at the minimum fill, so the first deletes dissolve and reinsert whole nodes."""
    rng = random.Random(1)
    units = [UnitPosition(f"u{i}", rng.uniform(-122.52, -122.35), rng.uniform(37.70, 37.83), 0.0,
                          status=rng.choice(sorted(STATUSES))) for i in range(3_000)]  # fmt: skip
    index = PositionIndex()
    index.bulk_load(units)
    model = {u.unit_id: u for u in units}
    for i, u in enumerate(units):
        if i % 3 == 0:
            index.remove(u.unit_id)
            del model[u.unit_id]
        else:
            moved = index.upsert(u.unit_id, u.lon + rng.uniform(-1e-3, 1e-3), u.lat, 1.0).new
            assert moved is not None
            model[u.unit_id] = moved
    for _ in range(50):
        lon, lat = rng.uniform(-122.52, -122.35), rng.uniform(37.70, 37.83)
        got = as_lists(index.nearest(lon, lat, 5, statuses=["available"]))
        assert got == brute_nearest(model.values(), lon, lat, 5, statuses=["available"])


# ---- geometry ------------------------------------------------------------------------------------------


def test_units_either_side_of_the_antimeridian_are_neighbours() -> None:
    index = PositionIndex()
    index.upsert("west_of_dateline", 179.99, 0.0, 1.0)
    index.upsert("east_of_dateline", -179.99, 0.0, 1.0)
    index.upsert("far_west", 179.9, 0.0, 1.0)
    result = index.nearest(-179.99, 0.0, 2)
    assert ids(result) == ["east_of_dateline", "west_of_dateline"]
    assert result.neighbors[1].distance_m == pytest.approx(2_223.9, abs=0.1)
    assert ids(index.nearest(180.0, 0.0, 2)) == ["west_of_dateline", "east_of_dateline"]
    assert {u.unit_id for u in index.in_bbox(179.95, -1.0, -179.95, 1.0)} == {
        "west_of_dateline",
        "east_of_dateline",
    }


def test_at_latitude_85_nearest_in_degrees_is_not_nearest_on_the_ground() -> None:
    """At 85° N a degree of longitude is 9.7 km, a degree of latitude 111 km: ranking degrees is wrong."""
    query = (0.0, 85.0)
    east = ("east", 0.5, 85.0)  # 0.5° of longitude: 4.8 km on the ground
    north = ("north", 0.0, 85.1)  # 0.1° of latitude: 11.1 km on the ground
    index = PositionIndex()
    for unit_id, lon, lat in (east, north):
        index.upsert(unit_id, lon, lat, 1.0)
    result = index.nearest(*query, 1)
    assert ids(result) == ["east"]
    assert result.neighbors[0].distance_m == pytest.approx(4_846.0, abs=1.0)
    # The trap this index avoids: a plain lon/lat rtree ranks by degrees and answers "north".
    naive = rtree_index.Index()
    for i, (_, lon, lat) in enumerate((east, north)):
        naive.insert(i, (lon, lat, lon, lat))
    assert [(east, north)[i][0] for i in naive.nearest((*query, *query), 1)] == ["north"]


def test_near_the_pole_the_other_side_is_closest() -> None:
    index = PositionIndex()
    index.upsert("across_the_pole", 180.0, 89.9, 1.0)  # ~22 km away, over the pole
    index.upsert("same_meridian", 0.0, 89.5, 1.0)  # ~44 km away, 0.4° "closer" in degrees
    index.upsert("south_pole", 0.0, -90.0, 1.0)
    assert ids(index.nearest(0.0, 89.9, 3)) == ["across_the_pole", "same_meridian", "south_pole"]
    assert ids(index.nearest(33.0, 90.0, 1)) == ["across_the_pole"]
    assert {u.unit_id for u in index.in_bbox(-180.0, 89.8, 180.0, 90.0)} == {"across_the_pole"}
    assert {u.unit_id for u in index.in_bbox(-1.0, 89.0, 1.0, 90.0)} == {"same_meridian"}


def test_in_bbox_edges_and_validation() -> None:
    index = PositionIndex()
    for unit_id, lon, lat in (("a", -10.0, 0.0), ("b", 10.0, 0.0), ("c", 0.0, 5.0), ("d", 170.0, -5.0)):
        index.upsert(unit_id, lon, lat, 1.0)
    assert {u.unit_id for u in index.in_bbox(-10.0, 0.0, 10.0, 5.0)} == {"a", "b", "c"}  # edges included
    assert {u.unit_id for u in index.in_bbox(-9.0, -1.0, 9.0, 1.0)} == set()
    assert {u.unit_id for u in index.in_bbox(160.0, -10.0, -5.0, 10.0)} == {"a", "d"}  # crosses ±180
    assert len(index.in_bbox(-180.0, -90.0, 180.0, 90.0)) == 4
    for box in [(0.0, 5.0, 1.0, 4.0), (math.nan, 0.0, 1.0, 1.0), (0.0, 0.0, 181.0, 1.0)]:
        with pytest.raises(ValueError):
            index.in_bbox(*box)


# ---- filters and exclusions ----------------------------------------------------------------------------


def _street(index: PositionIndex) -> None:
    """Units along the equator, 111 m apart (0.001° of longitude), with varied attributes."""
    rows = [
        ("u0", "busy", "police", set(), 100.0, 5.0),
        ("u1", "available", "police", set(), 100.0, None),
        ("u2", "available", "vehicle", set(), 100.0, 5.0),
        ("u3", "available", "police", set(), 10.0, 5.0),
        ("u4", "available", "police", set(), 100.0, 500.0),
        ("u5", "available", "police", {"k9"}, 100.0, 5.0),
        ("u6", "available", "police", set(), 100.0, 5.0),
        ("u7", "en_route", "police", {"k9"}, 100.0, 5.0),
    ]
    for i, (unit_id, status, kind, skills, ts_s, acc_m) in enumerate(rows):
        index.upsert(unit_id, i * 0.001, 0.0, ts_s, status=status, kind=kind, skills=skills, accuracy_m=acc_m)


def test_filters_run_inside_the_search_and_exclusions_are_counted() -> None:
    index = PositionIndex()
    _street(index)
    result = index.nearest(0.0, 0.0, 2, statuses=["available"], kinds=["police"], max_age_s=60.0, now_s=100.0,
                           max_accuracy_m=50.0)  # fmt: skip
    assert ids(result) == ["u5", "u6"]  # u1 has no accuracy, u3 is stale, u4 is too coarse
    assert result.excluded == {"status:busy": 1, "accuracy": 2, "kind": 1, "stale": 1}
    result = index.nearest(0.0, 0.0, 1, skills=["k9"])
    assert ids(result) == ["u5"] and result.excluded == {"skills": 5}
    assert as_lists(index.nearest(0.0, 0.0, 3, statuses=["available"], skills=["k9"])) == brute_nearest(
        index, 0.0, 0.0, 3, statuses=["available"], skills=["k9"]
    )


def test_radius_limits_results_and_counts_the_units_beyond_it() -> None:
    index = PositionIndex()
    _street(index)
    radius_m = haversine_m(0.0, 0.0, 0.004, 0.0)  # u4 sits exactly on the circle
    result = index.nearest(0.0, 0.0, 5, statuses=["available"], kinds=["police"], radius_m=radius_m)
    assert ids(result) == ["u1", "u3", "u4"]
    # u5 and u6 match too, beyond the radius: they would have filled the two places left.
    assert result.excluded == {"status:busy": 1, "kind": 1, "out_of_radius": 2}
    result = index.nearest(0.0, 0.0, 4, statuses=["available"], kinds=["police"], radius_m=radius_m)
    assert ids(result) == ["u1", "u3", "u4"] and result.excluded["out_of_radius"] == 1
    result = index.nearest(0.0, 0.0, 5, statuses=["en_route"], radius_m=500.0)
    assert result.neighbors == [] and result.excluded == {"status:busy": 1, "status:available": 4,
                                                          "out_of_radius": 1}  # fmt: skip
    result = index.nearest(0.0, 0.0, 5, statuses=["on_scene"], radius_m=200.0)  # nobody on scene anywhere
    assert result.neighbors == [] and result.excluded == {"status:busy": 1, "status:available": 1}
    result = index.nearest(0.0, 0.0, 2, radius_m=1e9)
    assert ids(result) == ["u0", "u1"] and result.excluded == {}


@given(
    st.tuples(st.floats(-180.0, 180.0), st.floats(-90.0, 90.0)),
    st.tuples(st.floats(-180.0, 180.0), st.floats(-90.0, 90.0)),
)
def test_a_unit_exactly_on_the_radius_is_inside(
    query: tuple[float, float], unit: tuple[float, float]
) -> None:
    """radius_m means distance_m <= radius_m, exactly, whatever the rounding of the search's own terms."""
    index = PositionIndex()
    index.upsert("u", *unit, 0.0)
    radius_m = haversine_m(*query, *unit)
    assert ids(index.nearest(*query, 1, radius_m=radius_m)) == ["u"]
    if radius_m > 0.0:
        below_m = math.nextafter(radius_m, 0.0)
        assert index.nearest(*query, 1, radius_m=below_m).excluded == {"out_of_radius": 1}


def test_fewer_matches_than_k_without_radius() -> None:
    index = PositionIndex()
    _street(index)
    result = index.nearest(0.0, 0.0, 5, statuses=["en_route", "busy"])
    assert ids(result) == ["u0", "u7"] and result.excluded == {"status:available": 6}
    result = index.nearest(0.0, 0.0, 5, statuses=["on_scene"])
    assert result == NearestResult([], {})


def test_rejects_are_measured_when_the_k_th_ties(monkeypatch: pytest.MonkeyPatch) -> None:
    """Status rejects before the (k-1)-th match are counted unmeasured only when that match is clearly
    nearer than the k-th; when the two tie, every such reject is measured and ranked exactly."""
    measured: list[int] = []
    real = _search._measure_skipped

    def spy(*args: Any) -> list[_search.Reject]:
        found = real(*args)
        measured.append(len(found))
        return found

    monkeypatch.setattr(_search, "_measure_skipped", spy)
    index = PositionIndex()
    index.upsert("r1", 0.001, 0.0, 1.0, status="busy")  # 111 m
    index.upsert("m1", 0.002, 0.0, 1.0, status="available")  # 222 m
    index.upsert("m2", 0.002, 0.0, 1.0, status="available")  # the same spot: ties with m1
    index.upsert("r2", 0.002, 0.0, 1.0, status="busy")  # ties too; "r2" > "m2": ranks after it
    index.upsert("a0", 0.002, 0.0, 1.0, status="busy")  # ties too; "a0" < "m1": ranks before both
    for k in (2, 3):
        assert as_lists(index.nearest(0.0, 0.0, k, statuses=["available"])) == brute_nearest(
            index, 0.0, 0.0, k, statuses=["available"]
        )
    assert measured  # the tie sent the scan down its exact path
    clear = PositionIndex()
    clear.upsert("r1", 0.001, 0.0, 1.0, status="busy")
    clear.upsert("m1", 0.002, 0.0, 1.0, status="available")
    clear.upsert("m2", 0.003, 0.0, 1.0, status="available")
    measured.clear()
    result = clear.nearest(0.0, 0.0, 2, statuses=["available"])
    assert ids(result) == ["m1", "m2"] and result.excluded == {"status:busy": 1}
    assert not measured  # nothing tied: r1 was counted without measuring it


def test_ties_are_broken_by_unit_id() -> None:
    index = PositionIndex()
    for unit_id in ("c", "a", "d", "b"):
        index.upsert(unit_id, -122.4, 37.8, 1.0, status="available" if unit_id != "a" else "busy")
    result = index.nearest(-122.41, 37.8, 2, statuses=["available"])
    assert ids(result) == ["b", "c"] and result.excluded == {"status:busy": 1}
    assert ids(index.nearest(-122.4, 37.8, 4)) == ["a", "b", "c", "d"]


def test_query_validation() -> None:
    index = PositionIndex()
    index.upsert("u1", 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="now_s"):
        index.nearest(0.0, 0.0, 1, max_age_s=10.0)
    bad_queries: list[Callable[[], object]] = [
        lambda: index.nearest(0.0, 0.0, 0),
        lambda: index.nearest(math.nan, 0.0, 1),
        lambda: index.nearest(0.0, 91.0, 1),
        lambda: index.nearest(0.0, 0.0, 1, radius_m=-1.0),
        lambda: index.nearest(0.0, 0.0, 1, radius_m=math.nan),
    ]
    for query in bad_queries:
        with pytest.raises(ValueError):
            query()


def test_empty_index() -> None:
    assert PositionIndex().nearest(0.0, 0.0, 3, radius_m=10.0) == NearestResult([], {})
    assert PositionIndex().in_bbox(-180.0, -90.0, 180.0, 90.0) == []


# ---- real data -----------------------------------------------------------------------------------------


def _latest_cab_positions() -> dict[str, tuple[float, float, float]]:
    latest: dict[str, tuple[float, float, float]] = {}
    with gzip.open(CABS_1H, "rt", newline="") as f:
        for row in csv.DictReader(f):  # sorted by time, so the last row per cab wins
            latest[row["object_id"]] = (float(row["lon"]), float(row["lat"]), float(len(latest)))
    return latest


def test_real_taxi_positions_agree_with_brute_force() -> None:
    if not CABS_1H.exists():
        pytest.skip(f"../shared/data not present: {CABS_1H} (one hour of San Francisco taxi fixes)")
    rng = random.Random(7)
    statuses = ["available", "available", "busy", "en_route"]
    units = [
        UnitPosition(cab, lon, lat, ts_s, rng.choice([None, 5.0, 30.0]), rng.choice(statuses))
        for cab, (lon, lat, ts_s) in sorted(_latest_cab_positions().items())
    ]
    assert len(units) > 400
    index = PositionIndex()
    index.bulk_load(units)
    for i in range(300):
        lon, lat = rng.uniform(-122.52, -122.35), rng.uniform(37.70, 37.83)
        query: dict[str, Any] = (
            {"statuses": ["available"]} if i % 2 else {"max_accuracy_m": 10.0, "radius_m": 1_500.0}
        )
        assert as_lists(index.nearest(lon, lat, 5, **query)) == brute_nearest(units, lon, lat, 5, **query)
