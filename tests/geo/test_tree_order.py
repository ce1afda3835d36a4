"""The Z-order PositionIndex numbers its slots in at bulk load: a permutation, and near points stay together.

The order only buys cache locality; the index's answers never depend on it (the brute-force comparisons
in test_index.py and test_index_stateful.py run over bulk-loaded indexes too).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from geo import PositionIndex, UnitPosition
from geo._tree import z_order

lon_lats = st.lists(st.tuples(st.floats(-180.0, 180.0), st.floats(-90.0, 90.0)), max_size=60)


def _order(points: list[tuple[float, float]]) -> list[int]:
    lons = np.array([p[0] for p in points], dtype=np.float64)
    lats = np.array([p[1] for p in points], dtype=np.float64)
    return [int(i) for i in z_order(lons, lats)]


@given(lon_lats)
def test_the_order_is_a_permutation_for_any_valid_points(points: list[tuple[float, float]]) -> None:
    assert sorted(_order(points)) == list(range(len(points)))


@given(
    st.lists(st.tuples(st.floats(0.0, 0.99), st.floats(0.0, 0.99)), min_size=2, max_size=20),
    st.lists(st.tuples(st.floats(-180.0, 180.0), st.floats(-90.0, 90.0)), max_size=40),
)
def test_points_of_one_aligned_cell_come_out_together(
    cell: list[tuple[float, float]], others: list[tuple[float, float]]
) -> None:
    """A Z-order curve visits each aligned cell of its grid in one run: here the cell of 1/512 of the
    longitudes and latitudes in the south-west corner, which the other points may also fall into."""
    inside = [(-180.0 + u * 360.0 / 512, -90.0 + v * 180.0 / 512) for u, v in cell]
    points = inside + others
    in_cell = [lon < -180.0 + 360.0 / 512 and lat < -90.0 + 180.0 / 512 for lon, lat in points]
    positions = [pos for pos, i in enumerate(_order(points)) if in_cell[i]]
    assert positions == list(range(positions[0], positions[0] + len(positions)))


def test_bulk_load_numbers_slots_along_the_curve() -> None:
    """Units listed far apart but standing side by side get neighbouring slots."""
    index = PositionIndex()
    index.bulk_load(
        [
            UnitPosition("a", -122.41, 37.77, 0.0),
            UnitPosition("far", 151.2, -33.9, 0.0),
            UnitPosition("b", -122.4101, 37.7701, 0.0),
        ]
    )
    slots = index._slots
    assert abs(slots["a"] - slots["b"]) == 1
    assert index.get("far") == UnitPosition("far", 151.2, -33.9, 0.0)
