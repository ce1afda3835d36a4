"""The grid index (locate, distance outside, crossings, neighbours, children), boundary checks, parent shares.

Synthetic tilings (squares and Voronoi cells, which tile exactly) and the real SF districts and neighbourhoods
(which do not nest, and are not exact coverages).
"""

from __future__ import annotations

import json
import random
from functools import cache

import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Point, box

from geo.boundaries import BoundaryError, area_shares, parent_by_area, read_boundary
from geo.distance import haversine_m
from geo.grids import LEVELS, Grid, GridIndex, as_geometry
from schemas.tables.grids import GRID_LEVELS
from sim.simulate.build_demo_data import DISTRICTS_PATH, NEIGHBORHOODS_PATH

# A 4 x 4 chessboard of 0.01° community squares, in 2 x 2 blocks of police grids, near San Francisco.
X0, Y0, STEP = -122.50, 37.70, 0.01


def _squares() -> GridIndex:
    grids = []
    for i in range(4):
        for j in range(4):
            parent = f"p{i // 2}{j // 2}"
            cell = box(X0 + i * STEP, Y0 + j * STEP, X0 + (i + 1) * STEP, Y0 + (j + 1) * STEP)
            grids.append(Grid(f"c{i}{j}", "community", f"cell {i},{j}", parent, as_geometry(cell)))
    for i in range(2):
        for j in range(2):
            block = box(
                X0 + 2 * i * STEP, Y0 + 2 * j * STEP, X0 + 2 * (i + 1) * STEP, Y0 + 2 * (j + 1) * STEP
            )
            grids.append(Grid(f"p{i}{j}", "police", f"block {i},{j}", None, as_geometry(block)))
    return GridIndex(grids)


SQUARES = _squares()


def _voronoi(n: int, seed: int) -> GridIndex:
    """`n` Voronoi cells clipped to a 0.04° box: an irregular exact tiling."""
    rng = random.Random(seed)
    frame = box(X0, Y0, X0 + 0.04, Y0 + 0.04)
    points = shapely.MultiPoint([(X0 + rng.random() * 0.04, Y0 + rng.random() * 0.04) for _ in range(n)])
    cells = [
        c.intersection(frame) for c in shapely.get_parts(shapely.voronoi_polygons(points, extend_to=frame))
    ]
    return GridIndex(
        Grid(f"v{k:03d}", "community", f"cell {k}", None, as_geometry(c)) for k, c in enumerate(cells)
    )


VORONOI = _voronoi(40, 7)


def _feature_grids(path: object, level: str, prop: str) -> list[Grid]:
    features = json.loads(path.read_text(encoding="utf-8"))["features"]  # type: ignore[attr-defined]
    return [
        Grid(
            f"{level}-{f['properties'][prop]}",
            level,
            f["properties"][prop],
            None,
            read_boundary(f["geometry"]).geometry,
        )  # type: ignore[arg-type]
        for f in features
    ]


@cache
def sf() -> GridIndex:
    police = _feature_grids(DISTRICTS_PATH, "police", "district")
    community = []
    for g in _feature_grids(NEIGHBORHOODS_PATH, "community", "neighborhood"):
        best, _ = parent_by_area(g.geometry, police)
        assert best is not None
        community.append(Grid(g.id, g.level, g.name, best.grid_id, g.geometry))
    return GridIndex(police + community)


inside_box = st.tuples(st.floats(X0, X0 + 0.04, allow_nan=False), st.floats(Y0, Y0 + 0.04, allow_nan=False))
sf_points = st.tuples(st.floats(-122.52, -122.35, allow_nan=False), st.floats(37.70, 37.84, allow_nan=False))


def test_levels_agree_with_the_table_vocabulary() -> None:
    assert LEVELS == GRID_LEVELS


def test_locate_names_the_community_and_police_grid() -> None:
    where = SQUARES.locate(X0 + 0.015, Y0 + 0.035)
    assert where.community is not None and where.community.id == "c13"
    assert where.police is not None and where.police.id == "p01"
    assert SQUARES.locate(X0 - 0.001, Y0) == (None, None)


def test_a_point_on_a_shared_border_goes_to_the_lower_id_whatever_the_input_order() -> None:
    on_border = (X0 + STEP, Y0 + 0.005)  # between c00 and c10
    assert {g.id for g in SQUARES.covering("community", *on_border)} == {"c00", "c10"}
    shuffled = GridIndex(reversed(SQUARES.grids()))
    for index in (SQUARES, shuffled):
        assert index.locate(*on_border).community.id == "c00"  # type: ignore[union-attr]
    corner = (X0 + 2 * STEP, Y0 + 2 * STEP)  # four cells and four blocks meet
    assert SQUARES.locate(*corner) == (SQUARES.get("c11"), SQUARES.get("p00"))


@settings(max_examples=300, deadline=None)
@given(inside_box)
def test_a_point_of_a_tiling_is_in_exactly_one_grid_of_each_level(p: tuple[float, float]) -> None:
    for index, levels in ((SQUARES, ("community", "police")), (VORONOI, ("community",))):
        where = index.locate(*p)
        for level in levels:
            found = where.community if level == "community" else where.police
            covering = index.covering(level, *p)  # type: ignore[arg-type]
            assert found is not None and covering and found == covering[0]
            brute = sorted(g.id for g in index.grids(level) if g.geometry.covers(Point(p)))  # type: ignore[arg-type]
            assert [g.id for g in covering] == brute
            interior = [g for g in index.grids(level) if g.geometry.contains(Point(p))]  # type: ignore[arg-type]
            assert len(interior) <= 1 and (not interior or interior[0] == found)


@settings(max_examples=200, deadline=None)
@given(sf_points)
def test_locate_on_the_real_districts_agrees_with_a_brute_force_scan(p: tuple[float, float]) -> None:
    index = sf()
    where = index.locate(*p)
    for level, found in (("community", where.community), ("police", where.police)):
        brute = sorted(g.id for g in index.grids(level) if g.geometry.covers(Point(p)))  # type: ignore[arg-type]
        assert (found.id if found else None) == (brute[0] if brute else None)


def test_distance_outside_is_zero_inside_and_metres_outside() -> None:
    assert SQUARES.distance_outside_m("c00", X0 + 0.005, Y0 + 0.005) == 0.0
    assert SQUARES.distance_outside_m("c00", X0 + STEP, Y0 + 0.005) == 0.0  # on the border
    east = SQUARES.distance_outside_m("c00", X0 + 0.02, Y0 + 0.005)  # 0.01° east of its east edge
    assert east == pytest.approx(haversine_m(X0 + STEP, Y0 + 0.005, X0 + 0.02, Y0 + 0.005), rel=1e-3)
    corner = SQUARES.distance_outside_m("c00", X0 - 0.003, Y0 - 0.004)
    assert corner == pytest.approx(haversine_m(X0, Y0, X0 - 0.003, Y0 - 0.004), rel=1e-3)


@settings(max_examples=200, deadline=None)
@given(sf_points)
def test_distance_outside_is_zero_exactly_where_the_grid_covers_the_point(p: tuple[float, float]) -> None:
    index = sf()
    grid = index.get("police-MISSION")
    d = index.distance_outside_m(grid.id, *p)
    assert (d == 0.0) == grid.geometry.covers(Point(p)) and d >= 0.0


def test_a_small_grid_between_two_fixes_is_entered_and_left() -> None:
    tiny = Grid("tiny", "community", "tiny", None, as_geometry(box(-122.4001, 37.7999, -122.3999, 37.8001)))
    index = GridIndex([tiny])
    assert index.locate(-122.41, 37.80).community is None and index.locate(-122.39, 37.80).community is None
    found = index.crossings("tiny", (-122.41, 37.80), (-122.39, 37.80))
    assert [(c.kind, round(c.fraction, 4)) for c in found] == [("enter", 0.495), ("exit", 0.505)]
    assert index.crossings(None, (-122.41, 37.80), (-122.39, 37.80)) == found
    assert index.crossings("tiny", (-122.41, 37.80), (-122.41, 37.80)) == []


def test_crossings_between_neighbours_exit_before_they_enter() -> None:
    found = SQUARES.crossings(None, (X0 + 0.005, Y0 + 0.005), (X0 + 0.015, Y0 + 0.005))
    assert [(c.grid_id, c.kind) for c in found] == [("c00", "exit"), ("c10", "enter")]
    assert found[0].fraction == pytest.approx(0.5)


def test_a_segment_along_a_border_stays_inside_both_grids() -> None:
    along = ((X0 + STEP, Y0 + 0.002), (X0 + STEP, Y0 + 0.008))
    assert SQUARES.crossings("c00", *along) == [] and SQUARES.crossings("c10", *along) == []


def _check_consistent(index: GridIndex, p0: tuple[float, float], p1: tuple[float, float]) -> None:
    events = index.crossings(None, p0, p1)
    assert [c.fraction for c in events] == sorted(c.fraction for c in events)
    assert all(0.0 <= c.fraction <= 1.0 for c in events)
    for grid in index.grids():
        mine = [c.kind for c in events if c.grid_id == grid.id]
        alone = index.crossings(grid.id, p0, p1)
        assert mine == [c.kind for c in alone]
        inside = bool(grid.geometry.covers(Point(p0)))
        assert inside == (grid in index.covering(grid.level, *p0))
        for kind in mine:
            assert kind == ("exit" if inside else "enter")
            inside = not inside
        assert inside == bool(grid.geometry.covers(Point(p1)))
    # locate at both ends agrees with the crossing record: a grid located at the start and not at the end
    # was left, and one located at the end was entered or held from the start.
    for level in LEVELS:
        at0, at1 = (getattr(index.locate(*p), level) for p in (p0, p1))
        if at0 is not None and at0 != at1 and not index.get(at0.id).geometry.covers(Point(p1)):
            assert [c.kind for c in events if c.grid_id == at0.id][-1] == "exit"
        if at1 is not None and at1 != at0 and not index.get(at1.id).geometry.covers(Point(p0)):
            assert [c.kind for c in events if c.grid_id == at1.id][-1] == "enter"


@settings(max_examples=150, deadline=None)
@given(inside_box, inside_box)
def test_crossings_are_consistent_with_locate_on_synthetic_tilings(
    p0: tuple[float, float], p1: tuple[float, float]
) -> None:
    _check_consistent(SQUARES, p0, p1)
    _check_consistent(VORONOI, p0, p1)


@settings(max_examples=60, deadline=None)
@given(sf_points, sf_points)
def test_crossings_are_consistent_with_locate_on_the_real_districts(
    p0: tuple[float, float], p1: tuple[float, float]
) -> None:
    _check_consistent(sf(), p0, p1)


def test_neighbours_and_children() -> None:
    assert [g.id for g in SQUARES.neighbours("c00")] == ["c01", "c10", "c11"]  # corners count
    assert [g.id for g in SQUARES.neighbours("p00")] == ["p01", "p10", "p11"]
    assert [g.id for g in SQUARES.children("p00")] == ["c00", "c01", "c10", "c11"]
    index = sf()
    assert [g.name for g in index.neighbours("police-MISSION")] == [
        "BAYVIEW",
        "INGLESIDE",
        "PARK",
        "SOUTHERN",
    ]
    children = {g.name for g in index.children("police-MISSION")}
    assert {"Mission", "Noe Valley", "Castro/Upper Market"} <= children
    assert len(index.grids("police")) == 10 and len(index.grids("community")) == 41


def test_the_real_neighbourhoods_do_not_nest_exactly() -> None:
    index = sf()
    police = index.grids("police")
    low = {
        g.name: round(area_shares(g.geometry, police)[0].share, 2)
        for g in index.grids("community")
        if area_shares(g.geometry, police)[0].share < 0.8
    }
    assert low == {
        "Castro/Upper Market": 0.57,
        "Financial District/South Beach": 0.5,
        "Inner Sunset": 0.56,
        "Lincoln Park": 0.58,
        "Noe Valley": 0.62,
        "Presidio": 0.0,
        "Russian Hill": 0.69,
        "Tenderloin": 0.63,
        "West of Twin Peaks": 0.56,
    }


def test_an_index_refuses_duplicate_ids() -> None:
    grid = SQUARES.get("c00")
    with pytest.raises(ValueError, match="twice"):
        GridIndex([grid, grid])


SQUARE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]


@pytest.mark.parametrize(
    ("geometry", "message"),
    [
        (None, "no geometry"),
        ({"type": "Point", "coordinates": [0, 0]}, "'Point': a grid needs a Polygon"),
        ({"type": "Polygon", "coordinates": []}, "empty"),
        ({"type": "MultiPolygon", "coordinates": [[]]}, "polygon 0 is empty"),
        ({"type": "Polygon", "coordinates": [SQUARE[:-1]]}, "ring 0 of polygon 0 is not closed"),
        ({"type": "Polygon", "coordinates": [SQUARE[:3]]}, "needs at least 4"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], "x", [0, 0]]]}, "position 2 of ring 0"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, True], [0, 0]]]}, "not \\[lon, lat\\]"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [200, 0], [1, 1], [0, 0]]]}, "outside lon"),
        (
            {
                "type": "Polygon",
                "coordinates": [[[37.7, -122.4], [37.8, -122.4], [37.8, -122.3], [37.7, -122.4]]],
            },
            "looks like lat, lon",
        ),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [2, 2], [0, 0]]]}, "nothing polygonal|no area"),
    ],
)
def test_bad_boundaries_are_refused_with_where_and_why(geometry: object, message: str) -> None:
    with pytest.raises(BoundaryError, match=message):
        read_boundary(geometry)


def test_a_self_intersecting_ring_is_repaired_and_reported() -> None:
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    boundary = read_boundary(bowtie)
    assert boundary.geometry.is_valid and boundary.geometry.area == pytest.approx(0.5)
    assert len(boundary.repairs) == 1 and "Self-intersection" in boundary.repairs[0]
    clean = read_boundary({"type": "Polygon", "coordinates": [SQUARE]})
    assert clean.repairs == () and isinstance(clean.geometry, MultiPolygon)
