"""Outpost's pure geometry layer: distances, boxes, the live position index and multi-device fusion.

Coordinates are always ``lon, lat`` in that order (x = longitude), in WGS84 decimal degrees, as rtree,
PostGIS and GeoJSON all agree. Quantities carry their unit in the name: ``_m``, ``_s``, ``_deg``, ``_mps``.
Everything here is synchronous and free of I/O; it must never import storage, network or asyncio code.
"""

from geo.bbox import BBox, bbox_around, valid_lon_lat
from geo.distance import EARTH_RADIUS_M, destination, haversine_m, initial_bearing_deg
from geo.fusion import DeviceFix, fuse, separation
from geo.index import PositionIndex
from geo.units import KINDS, STATUSES, Change, Filters, NearestResult, Neighbor, UnitPosition

__all__ = [
    "EARTH_RADIUS_M",
    "KINDS",
    "STATUSES",
    "BBox",
    "Change",
    "DeviceFix",
    "Filters",
    "NearestResult",
    "Neighbor",
    "PositionIndex",
    "UnitPosition",
    "bbox_around",
    "destination",
    "fuse",
    "haversine_m",
    "initial_bearing_deg",
    "separation",
    "valid_lon_lat",
]
