"""A small duty world on any store: two police grids with a community grid each, two officers, two
auxiliaries and a vehicle (units p1, p2, a1, a2, v1; grids police-1, police-2, community-1, community-2)."""

from __future__ import annotations

from datetime import datetime

from shapely.geometry import MultiPolygon, box
from sqlalchemy import Engine

from store import grids, registry


def seed(engine: Engine, now: datetime) -> None:
    """Two police grids with a community grid each; two officers, two auxiliaries, a vehicle."""
    for n, x in ((1, 0.0), (2, 1.0)):
        square = MultiPolygon([box(x, 0.0, x + 1.0, 1.0)])
        grids.create_grid(
            engine,
            grid_id=f"police-{n}",
            level="police",
            name=f"P{n}",
            parent_id=None,
            geometry=square,
            now=now,
        )
        grids.create_grid(
            engine,
            grid_id=f"community-{n}",
            level="community",
            name=f"C{n}",
            parent_id=f"police-{n}",
            geometry=square,
            now=now,
        )
    for unit_id, kind in (("p1", "police"), ("p2", "police"), ("a1", "auxiliary"), ("a2", "auxiliary")):
        registry.insert_unit(engine, id=unit_id, name=unit_id, kind=kind, now=now)
    registry.insert_unit(engine, id="v1", name="v1", kind="vehicle", now=now)
