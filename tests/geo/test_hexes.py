"""geo.hexes: the masks the SQL uses give h3's own parent at every resolution, anywhere on Earth; a cell's
boundary is a closed lon/lat ring around its centre."""

from __future__ import annotations

import h3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, shape

from geo.hexes import (
    MAX_RES,
    STORED_RES,
    boundary,
    cell_id,
    cell_of,
    parent_masks,
    parent_of,
    resolution_of,
)

lons = st.floats(min_value=-180.0, max_value=180.0, allow_nan=False)
lats = st.floats(min_value=-90.0, max_value=90.0, allow_nan=False)
resolutions = st.integers(min_value=0, max_value=MAX_RES)


@given(lons, lats, resolutions)
@settings(max_examples=500)
def test_the_masked_parent_is_h3s_parent(lon: float, lat: float, res: int) -> None:
    cell = cell_of(lon, lat)
    assert resolution_of(cell) == STORED_RES
    expected = h3.cell_to_parent(cell_id(cell), res)
    assert cell_id(parent_of(cell, res)) == expected
    assert resolution_of(parent_of(cell, res)) == res


@given(lons, lats, resolutions)
def test_cells_fit_a_signed_bigint(lon: float, lat: float, res: int) -> None:
    cell = parent_of(cell_of(lon, lat), res)
    assert -(2**63) <= cell < 2**63
    assert cell >= 0  # H3's reserved top bit is clear: the same integer on every backend
    clear, set_ = parent_masks(res)
    assert -(2**63) <= clear < 2**63 and 0 <= set_ < 2**63


def test_a_point_in_san_francisco_matches_h3_directly() -> None:
    lon, lat = -122.4194, 37.7793
    assert cell_id(cell_of(lon, lat, 8)) == h3.latlng_to_cell(lat, lon, 8)
    assert cell_id(parent_of(cell_of(lon, lat), 15)) == h3.latlng_to_cell(lat, lon, 15)


@pytest.mark.parametrize("res", [-1, 16])
def test_resolutions_out_of_range_are_refused(res: int) -> None:
    with pytest.raises(ValueError, match="resolution"):
        parent_masks(res)


@given(st.floats(-179.0, 179.0), st.floats(-80.0, 80.0), st.integers(min_value=3, max_value=12))
def test_the_boundary_is_a_closed_lon_lat_ring_around_the_cell(lon: float, lat: float, res: int) -> None:
    cell = cell_of(lon, lat, res)
    polygon = boundary(cell)
    ring = polygon["coordinates"][0]
    # 5 or 6 corners, plus up to 4 more where a cell crosses an icosahedron's edge; closed.
    assert polygon["type"] == "Polygon" and ring[0] == ring[-1] and 6 <= len(ring) <= 11
    c_lat, c_lon = h3.cell_to_latlng(cell_id(cell))
    assert shape(polygon).contains(Point(c_lon, c_lat))  # lon/lat order, or the centre would fall outside
