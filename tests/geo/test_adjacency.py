"""Grid adjacency computed once: symmetric, irreflexive, per level, exactly `GridIndex.neighbours` (the
per-call query it replaces), on lattices of squares and on the real San Francisco grids."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, box, shape

from geo.adjacency import Adjacency
from geo.grids import Grid, GridIndex, as_geometry
from sim.simulate.build_demo_data import DISTRICTS_PATH, NEIGHBORHOODS_PATH


def _lattice(rows: int, cols: int, gap: float) -> GridIndex:
    """rows × cols unit squares `gap` apart (0: touching) as police grids, one community grid covering all."""
    squares = [
        Grid(
            f"p-{r}-{c}",
            "police",
            f"{r},{c}",
            None,
            MultiPolygon([box(c * (1 + gap), r * (1 + gap), c * (1 + gap) + 1, r * (1 + gap) + 1)]),
        )
        for r in range(rows)
        for c in range(cols)
    ]
    whole = Grid("c-all", "community", "all", None, MultiPolygon([box(0, 0, cols * 2, rows * 2)]))
    return GridIndex([*squares, whole])


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(1, 5), st.sampled_from([0.0, 0.5]))
def test_touching_squares_are_the_eight_around_and_apart_ones_none(rows: int, cols: int, gap: float) -> None:
    adjacency = Adjacency(_lattice(rows, cols, gap))
    for r in range(rows):
        for c in range(cols):
            expected = (
                sorted(
                    f"p-{rr}-{cc}"
                    for rr in range(max(0, r - 1), min(rows, r + 2))
                    for cc in range(max(0, c - 1), min(cols, c + 2))
                    if (rr, cc) != (r, c)
                )
                if gap == 0.0
                else []
            )
            assert list(adjacency.neighbours(f"p-{r}-{c}")) == expected
    assert adjacency.neighbours("c-all") == ()  # the other level never counts
    assert adjacency.neighbours("unknown") == ()


def test_the_sf_grids_agree_with_the_index_and_touch_symmetrically() -> None:
    found = []
    for path, level, prop in (
        (DISTRICTS_PATH, "police", "district"),
        (NEIGHBORHOODS_PATH, "community", "neighborhood"),
    ):
        for f in json.loads(path.read_text(encoding="utf-8"))["features"]:
            name = f["properties"][prop]
            found.append(Grid(f"{level}-{name}", level, name, None, as_geometry(shape(f["geometry"]))))  # type: ignore[arg-type]
    index = GridIndex(found)
    adjacency = Adjacency(index)
    assert len(adjacency) == 51
    for grid in index.grids():
        mine = adjacency.neighbours(grid.id)
        assert mine == tuple(g.id for g in index.neighbours(grid.id))
        assert grid.id not in mine and all(grid.id in adjacency.neighbours(n) for n in mine)
    assert adjacency.neighbours("police-CENTRAL") == (
        "police-NORTHERN",
        "police-SOUTHERN",
        "police-TENDERLOIN",
    )
