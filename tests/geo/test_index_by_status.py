"""The dispatcher's query (a status filter at most, no other filter, no radius) takes a fused path,
_search.nearest_by_status: it must give exactly what scan then settle give, for every fetch (short ones
included), and what the brute-force scan gives, distances and `excluded` counts included, for fleets crowding
a pole, straddling ±180° or piled on one spot (exact ties, decided by unit_id)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo import STATUSES, PositionIndex, UnitPosition, _search
from geo._tree import sphere_point
from tests.geo.test_index import as_lists, brute_nearest, index_of

PLACES = [
    ((-180.0, 180.0), (89.99, 90.0)),  # north cap
    ((-180.0, 180.0), (-90.0, -89.99)),  # south cap
    ((179.999, 180.0), (-0.001, 0.001)),  # east of the antimeridian...
    ((-180.0, -179.999), (-0.001, 0.001)),  # ...and west of it
    ((-122.52, -122.35), (37.70, 37.83)),  # San Francisco
]
SPOTS = [(180.0, 0.0), (-180.0, 0.0), (0.0, 90.0), (-122.4, 37.8)]
STATUS_LIST = sorted(STATUSES)


@st.composite
def points(draw: st.DrawFn, places: list[int]) -> tuple[float, float]:
    if draw(st.integers(0, 5)) == 0:
        return draw(st.sampled_from(SPOTS))  # a shared spot: exact ties
    (west, east), (south, north) = PLACES[draw(st.sampled_from(places))]
    return draw(st.floats(west, east)), draw(st.floats(south, north))


@st.composite
def fleets(draw: st.DrawFn) -> tuple[list[int], list[UnitPosition]]:
    places = draw(st.sampled_from([[0], [1], [2, 3], [0, 4], [2, 3, 4]]))
    statuses = draw(st.lists(st.sampled_from(STATUS_LIST), min_size=1, max_size=4))
    units = []
    for i in range(draw(st.integers(0, 80))):
        lon, lat = draw(points(places))
        # random ids, so id order differs from slot and insertion order
        uid = f"u{draw(st.integers(0, 10**6)):07d}-{i}"
        units.append(UnitPosition(uid, lon, lat, 0.0, status=draw(st.sampled_from(statuses))))
    return places, units


@settings(max_examples=200, deadline=None)
@given(
    fleet=fleets(),
    data=st.data(),
    k=st.integers(1, 10),
    statuses=st.none() | st.frozensets(st.sampled_from(STATUS_LIST), min_size=1, max_size=3),
    bulk=st.booleans(),
)
def test_the_dispatchers_query_matches_brute_force(
    fleet: tuple[list[int], list[UnitPosition]],
    data: st.DataObject,
    k: int,
    statuses: frozenset[str] | None,
    bulk: bool,
) -> None:
    places, units = fleet
    index = index_of(units, bulk)
    for _ in range(3):
        lon, lat = data.draw(points(places))
        got = as_lists(index.nearest(lon, lat, k, statuses=statuses))
        assert got == brute_nearest(units, lon, lat, k, statuses=statuses)


@settings(max_examples=200, deadline=None)
@given(
    fleet=fleets(),
    data=st.data(),
    k=st.integers(1, 10),
    statuses=st.frozensets(st.sampled_from(STATUS_LIST), min_size=1, max_size=3),
    bulk=st.booleans(),
)
def test_the_fused_path_equals_scan_then_settle_for_every_fetch(
    fleet: tuple[list[int], list[UnitPosition]],
    data: st.DataObject,
    k: int,
    statuses: frozenset[str],
    bulk: bool,
) -> None:
    """Same answer, and the same None (fetch again), for every fetch size from 0 to all units."""
    places, units = fleet
    index = index_of(units, bulk)
    lon, lat = data.draw(points(places))
    q = sphere_point(lon, lat)
    flt = _search.make_filter(tuple(statuses), None, (), None, None)
    n = len(index)
    bound = sum(index.count_by_status()[s] for s in statuses)
    everything = index._tree.nearest(q[3], q[4], q[5], n) if n else []
    for want in sorted({0, 1, k, k + 1, 2 * k + 2, n // 2, n}):
        slots = everything[:want]
        exhausted = len(slots) >= n
        found = _search.scan(slots, q, flt, 0.0, k, index._geo, index._codes, index._entries, True)
        expected = _search.settle(k, None, found, exhausted, found[4] >= bound, index._entries)
        got = _search.nearest_by_status(
            slots, q, flt.status_ok, k, index._geo, index._codes, index._entries, exhausted, bound
        )
        assert got == expected


def test_the_dispatchers_query_takes_the_fused_path(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    fused = _search.nearest_by_status

    def spy(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return fused(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_search, "nearest_by_status", spy)
    index = PositionIndex()
    index.upsert("a", -122.4, 37.8, 0.0, status="available")
    index.upsert("b", -122.41, 37.8, 0.0, status="busy")
    result = index.nearest(-122.42, 37.8, 1, statuses=("available",))
    assert [n.entry.unit_id for n in result.neighbors] == ["a"] and result.excluded == {"status:busy": 1}
    assert calls == [1]
    index.nearest(-122.42, 37.8, 1, kinds=("police",))  # another filter: the general path
    assert calls == [1]
