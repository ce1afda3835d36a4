"""H3 hexagons for heat maps: the cell of a point, a cell's parent by bit masks, a cell as a GeoJSON polygon.

An incident stores ONE cell, at `STORED_RES` (15, the finest H3 has), as a signed 64-bit integer. Its cell at
any coarser resolution r is then pure bit arithmetic on that integer (`parent_masks`): set the 4-bit
resolution field (bits 52–55) to r and the digits r+1 … 15 (3 bits each, the lowest 45 bits) to 7, the
"unused" digit. `(cell & clear) | set` is an expression both PostgreSQL and SQLite evaluate on a BIGINT, so
heat maps GROUP BY in the database, identically on both. Storing the finest resolution costs the same 8 bytes
as any other and leaves every resolution one mask away.

H3's hierarchy is approximate: a res-15 cell's parent at r is the hexagon holding the res-15 cell's centre
chain, which for a few per cent of points near a hexagon's edge is the neighbour of `latlng_to_cell(p, r)`.
Counting by parents keeps every level consistent (a hexagon's count is exactly the sum of its children's),
which a map that zooms needs more than edge-exactness at 10 m.

Coordinates are lon, lat (GeoJSON order) everywhere here, although h3's own API takes lat, lng.
"""

from __future__ import annotations

from typing import Any

import h3

STORED_RES = 15
MAX_RES = 15
_RES_SHIFT = 52
_RES_FIELD = 0xF << _RES_SHIFT
_INT64 = 1 << 64


def _signed(value: int) -> int:
    """`value` as the two's-complement int64 both databases hold (H3 cells have bit 63 clear anyway)."""
    value &= _INT64 - 1
    return value - _INT64 if value >= 1 << 63 else value


def cell_of(lon: float, lat: float, res: int = STORED_RES) -> int:
    """The H3 cell holding (lon, lat) at `res`, as an int64."""
    return _signed(h3.str_to_int(h3.latlng_to_cell(lat, lon, res)))


def parent_masks(res: int) -> tuple[int, int]:
    """(clear, set): a stored cell's parent at `res` is `(cell & clear) | set` (both signed int64)."""
    if not 0 <= res <= STORED_RES:
        raise ValueError(f"resolution must be between 0 and {STORED_RES}, got {res}")
    unused_digits = (1 << (3 * (15 - res))) - 1  # digits res+1 .. 15, all 7
    clear = ~_RES_FIELD & ~unused_digits
    return _signed(clear), _signed((res << _RES_SHIFT) | unused_digits)


def parent_of(cell: int, res: int) -> int:
    """The parent of a stored cell at `res`, by the masks the SQL uses."""
    clear, set_ = parent_masks(res)
    return (cell & clear) | set_


def cell_id(cell: int) -> str:
    """The cell's canonical H3 string (15 hex digits, as every H3 tool prints it)."""
    return str(h3.int_to_str(cell & (_INT64 - 1)))


def resolution_of(cell: int) -> int:
    """The cell's resolution field."""
    return (cell & _RES_FIELD) >> _RES_SHIFT


def boundary(cell: int) -> dict[str, Any]:
    """The cell's hexagon (a pentagon for 12 cells a level) as a closed GeoJSON Polygon, lon/lat."""
    ring = [[lng, lat] for lat, lng in h3.cell_to_boundary(cell_id(cell))]
    ring.append(ring[0])
    return {"type": "Polygon", "coordinates": [ring]}
