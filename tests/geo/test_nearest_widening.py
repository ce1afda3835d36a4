"""Nearest with a status filter stays exact when its first fetch falls short and the search widens.

Fleets of a few dozen units crowd a polar cap, straddle the antimeridian or sit in San Francisco, with few
units of the asked status, so the first fetch (sized from the live counts) often holds fewer than k matches
or a k-th too near its edge, and the tree is asked again for more. Every answer, distances and exclusion
counts included, is checked against the brute-force scan.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from geo import STATUSES, UnitPosition
from tests.geo.test_index import as_lists, brute_nearest, index_of

# (lon range, lat range) of each crowded place; a unit or a query may fall anywhere inside.
PLACES = {
    "north cap": ((-180.0, 180.0), (89.99, 90.0)),
    "south cap": ((-180.0, 180.0), (-90.0, -89.99)),
    "antimeridian": ((179.999, 180.0), (-0.001, 0.001)),
    "antimeridian west": ((-180.0, -179.999), (-0.001, 0.001)),
    "san francisco": ((-122.52, -122.35), (37.70, 37.83)),
}
# A few available among many of other statuses: the first fetch is sized for this share and often misses.
STATUS_WEIGHTS = [("available", 1), ("busy", 3), ("on_scene", 2), ("off_duty", 2), ("break", 1)]


@st.composite
def point_in(draw: st.DrawFn, places: list[str]) -> tuple[float, float]:
    (west, east), (south, north) = PLACES[draw(st.sampled_from(places))]
    return draw(st.floats(west, east)), draw(st.floats(south, north))


@st.composite
def fleets(draw: st.DrawFn) -> tuple[list[str], list[UnitPosition]]:
    places = draw(st.sampled_from([["north cap"], ["south cap"], ["antimeridian", "antimeridian west"]]))
    if draw(st.booleans()):
        places = [*places, "san francisco"]
    n = draw(st.integers(20, 120))
    statuses = [s for s, w in STATUS_WEIGHTS for _ in range(w)]
    units = []
    for i in range(n):
        lon, lat = draw(point_in(places))
        units.append(UnitPosition(f"u{i:03d}", lon, lat, 0.0, status=draw(st.sampled_from(statuses))))
    return places, units


@settings(max_examples=150, deadline=None)
@given(
    fleet=fleets(),
    data=st.data(),
    k=st.integers(1, 8),
    statuses=st.frozensets(st.sampled_from(sorted(STATUSES)), min_size=1, max_size=3),
    bulk=st.booleans(),
)
def test_filtered_nearest_matches_brute_force_at_the_poles_and_the_antimeridian(
    fleet: tuple[list[str], list[UnitPosition]],
    data: st.DataObject,
    k: int,
    statuses: frozenset[str],
    bulk: bool,
) -> None:
    places, units = fleet
    index = index_of(units, bulk)
    for _ in range(4):
        lon, lat = data.draw(point_in(places))
        got = as_lists(index.nearest(lon, lat, k, statuses=statuses))
        assert got == brute_nearest(units, lon, lat, k, statuses=statuses)


def test_a_search_that_widens_stays_exact() -> None:
    """Around the north pole only busy units and one available: the first fetch, sized for the share of
    available units Earth-wide, holds no match, and the search widens until it proves the answer."""
    units = [UnitPosition(f"b{i:03d}", -180.0 + 3.6 * i, 89.999, 0.0, status="busy") for i in range(100)]
    units += [UnitPosition(f"s{i:02d}", -180.0 + 6.0 * i, -89.99, 0.0, status="available") for i in range(60)]
    units.append(UnitPosition("c", 179.9, 89.0, 0.0, status="available"))
    index = index_of(units, bulk=True)
    fetches: list[int] = []
    tree_nearest = index._tree.nearest

    def counting(x: float, y: float, z: float, want: int) -> list[int]:
        fetches.append(want)
        return tree_nearest(x, y, z, want)

    index._tree.nearest = counting  # type: ignore[method-assign]
    for lon, lat in [(0.0, 90.0), (-179.99, 89.9995), (180.0, 89.99)]:
        fetches.clear()
        got = as_lists(index.nearest(lon, lat, 2, statuses=("available",)))
        assert got == brute_nearest(units, lon, lat, 2, statuses=("available",))
        assert len(fetches) > 1, fetches  # the search did widen
        assert got[0][0][0] == "c"
        assert got[1] == {"status:busy": 100}
