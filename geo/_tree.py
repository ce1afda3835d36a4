"""Points on the unit sphere in a 3-D libspatialindex R*-tree: the storage layer under PositionIndex.

Each lon/lat is stored as a unit vector (x, y, z). Straight-line (chord) distance between unit vectors
grows strictly with great-circle distance, so the tree's own nearest-neighbour order *is* the order on the
ground: no degree distortion at high latitude, no seam at the antimeridian, no special case at the poles.
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
from rtree import core as rtree_core
from rtree import index as rtree_index
from rtree.exceptions import RTreeError

# rtree Property, tuned with benchmarks/bench_index.py (100k units over San Francisco; it prints the
# default-vs-tuned figures). With the defaults (capacity 100, fill factor 0.7) a delete costs hundreds of
# µs at the tail: nearly every removal underflows its node, which is then dissolved and reinserted.
# - capacity 24: libspatialindex deserialises a whole node on every visit, so small nodes keep moves and
#   k-NN cheap (100 doubles the k-NN cost); at 8 the tree gets deep and both slow down again; 16 to 32
#   measure alike.
# - fill factor 0.3: a node dissolves only below 7 entries, so moves rarely cascade. Caveat: stream bulk
#   loading packs nodes at exactly that minimum, so the first delete from each bulk-loaded leaf dissolves
#   it (and can cascade up): moves right after bulk_load cost ~2.5-3x (p50) until most units have moved.
# - near-minimum-overlap factor 8 (default 32): R* weighs overlap for 8 rather than 32 children per insert.
LEAF_CAPACITY = 24
INDEX_CAPACITY = 24
FILL_FACTOR = 0.3
NEAR_MINIMUM_OVERLAP_FACTOR = 8

# Stride of the per-slot float array PositionIndex keeps: lon_rad, lat_rad, cos(lat), x, y, z.
GEO_STRIDE = 6

SpherePoint = tuple[float, float, float, float, float, float]
"""lon_rad, lat_rad, cos(lat), x, y, z: what the refine step needs (two sines a unit), then the point."""


def sphere_point(lon: float, lat: float) -> SpherePoint:
    """Precompute a lon/lat (degrees) for the haversine refine step and the tree."""
    lon_r = math.radians(lon)
    lat_r = math.radians(lat)
    cos_lat = math.cos(lat_r)
    return lon_r, lat_r, cos_lat, cos_lat * math.cos(lon_r), cos_lat * math.sin(lon_r), math.sin(lat_r)


# Bits of each coordinate in the Z-order key: 2^-24 of the longitude range is ~2.4 m at the equator.
_Z_BITS = 24


def z_order(lons: npt.NDArray[np.float64], lats: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """A permutation putting points along a Z-order (Morton) curve over lon/lat: near points end up near.

    PositionIndex numbers its slots in this order at bulk load, so the candidates of one search share
    cache lines in its per-slot arrays instead of costing a cache miss each (a third of a search's Python
    time at 100k units). Only locality depends on it, never correctness.
    """
    scale = float(1 << _Z_BITS)
    xs = np.minimum((lons + 180.0) * (scale / 360.0), scale - 1.0).astype(np.uint64)
    ys = np.minimum((lats + 90.0) * (scale / 180.0), scale - 1.0).astype(np.uint64)
    return np.argsort(_spread_bits(xs) | (_spread_bits(ys) << np.uint64(1)), kind="stable")


def _spread_bits(v: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """Move bit i of each (32-bit) value to bit 2i, leaving the odd bits zero."""
    for shift, mask in ((16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF), (4, 0x0F0F0F0F0F0F0F0F),
                        (2, 0x3333333333333333), (1, 0x5555555555555555)):  # fmt: skip
        v = (v | (v << np.uint64(shift))) & np.uint64(mask)
    return v


def tuned_properties() -> rtree_index.Property:
    """The rtree Property PositionIndex uses (see the constants above for why)."""
    return rtree_index.Property(
        dimension=3,
        leaf_capacity=LEAF_CAPACITY,
        index_capacity=INDEX_CAPACITY,
        fill_factor=FILL_FACTOR,
        near_minimum_overlap_factor=NEAR_MINIMUM_OVERLAP_FACTOR,
    )


class SphereTree:
    """The tree, with allocation-free calls for its hot operations (insert, delete, k-NN).

    rtree's public methods build fresh ctypes arrays and run a Python error-check callback on every call,
    about a fifth of a move's cost. The hot operations therefore call the C API through private prototypes
    of the same functions (rtree's own function objects are left untouched); bulk loading and box queries
    go through the public API. Holds scratch buffers: one tree belongs to one thread.
    """

    def __init__(self, stream: Iterable[tuple[int, tuple[float, ...], None]] | None = None) -> None:
        props = tuned_properties()
        self._rtree = (
            rtree_index.Index(properties=props)
            if stream is None
            else rtree_index.Index(stream, properties=props)
        )
        self._handle = self._rtree.handle._as_parameter_
        self._buf = (ctypes.c_double * 3)()
        self._ids = ctypes.POINTER(ctypes.c_int64)()
        self._count = ctypes.c_uint64(0)
        self._ids_ref = ctypes.byref(self._ids)
        self._count_ref = ctypes.byref(self._count)
        # The k-NN's arguments, converted once: it is called without argtypes (see _KNN).
        self._knn_handle = ctypes.c_void_p(self._handle)

    def insert(self, slot: int, x: float, y: float, z: float) -> None:
        """Add the point (x, y, z) under integer id `slot`."""
        buf = self._buf
        buf[0], buf[1], buf[2] = x, y, z
        if _INSERT(self._handle, slot, buf, buf, 3, None, 0):
            raise _last_error("insert")

    def delete(self, slot: int, x: float, y: float, z: float) -> None:
        """Remove id `slot`, stored at exactly (x, y, z)."""
        buf = self._buf
        buf[0], buf[1], buf[2] = x, y, z
        if _DELETE(self._handle, slot, buf, buf, 3):
            raise _last_error("delete")

    def nearest(self, x: float, y: float, z: float, want: int) -> list[int]:
        """Ids of the `want` points nearest (x, y, z), nearest first; more when the farthest ones tie."""
        buf = self._buf
        buf[0], buf[1], buf[2] = x, y, z
        self._count.value = want
        if _KNN(self._knn_handle, buf, buf, _THREE, self._ids_ref, self._count_ref):
            raise _last_error("nearest")
        ids = self._ids
        slots: list[int] = ids[: self._count.value]
        if ids:
            _FREE(ids)
        return slots

    def in_rect(self, west: float, south: float, east: float, north: float) -> list[int]:
        """Ids of points that may lie in the lon/lat rectangle (a superset: callers check exactly)."""
        return list(self._rtree.intersection(_rect_box(west, south, east, north)))


def _prototype(name: str) -> ctypes._NamedFuncPointer:
    """A separate function object with rtree's argument types, returning the raw status (no errcheck)."""
    fn = rtree_core.rt[name]
    fn.argtypes = getattr(rtree_core.rt, name).argtypes
    fn.restype = ctypes.c_int
    return fn


def _unconverted(name: str) -> ctypes._NamedFuncPointer:
    """A separate function object without argtypes (callers pass ctypes objects), returning the raw status."""
    fn = rtree_core.rt[name]
    fn.restype = ctypes.c_int
    return fn


_INSERT = _prototype("Index_InsertData")
_DELETE = _prototype("Index_DeleteData")
# The k-NN, every query's dearest call, goes without argtypes: each argument is passed as an object of its
# C type already (handle, double arrays, the dimension, references to the int64* and uint64 it fills), so
# ctypes skips the per-argument conversion (~0.9 µs a query). Only ctypes objects may be passed to it.
_KNN = _unconverted("Index_NearestNeighbors_id")
_THREE = ctypes.c_uint32(3)
_FREE = _unconverted("Index_Free")  # takes the int64* k-NN hands back (a ctypes pointer object) as is


def _last_error(op: str) -> RTreeError:
    msg = rtree_core.rt.Error_GetLastErrorMsg().decode()
    rtree_core.rt.Error_Reset()
    return RTreeError(f"rtree {op} failed: {msg}")


def _rect_box(west: float, south: float, east: float, north: float) -> tuple[float, ...]:
    """A 3-D box (mins, then maxs) holding the unit vectors of a lon/lat rectangle's points (west <= east)."""
    lats = (math.radians(south), math.radians(north))
    cos_lats = [math.cos(r) for r in lats]
    c_min, c_max = min(cos_lats), (1.0 if south <= 0.0 <= north else max(cos_lats))
    # cos and sin of the longitude peak at the range's ends or at a quarter meridian inside it.
    lons = [math.radians(v) for v in (west, east, -180.0, -90.0, 0.0, 90.0, 180.0) if west <= v <= east]
    coss = [math.cos(r) for r in lons]
    sins = [math.sin(r) for r in lons]
    pad = 1e-12  # rounding of the stored vectors is ~1e-16
    x_lo = min(c_min * min(coss), c_max * min(coss)) - pad
    x_hi = max(c_min * max(coss), c_max * max(coss)) + pad
    y_lo = min(c_min * min(sins), c_max * min(sins)) - pad
    y_hi = max(c_min * max(sins), c_max * max(sins)) + pad
    return (x_lo, y_lo, math.sin(lats[0]) - pad, x_hi, y_hi, math.sin(lats[1]) + pad)
