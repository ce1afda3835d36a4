"""The real San Francisco grids in a test world: the 10 police districts and the 41 neighbourhoods shipped
in sim/data, imported through the store, and units assigned to them (the seed's one holder per grid)."""

from __future__ import annotations

import json
from datetime import timedelta

from geo.grids import GridIndex
from sim.simulate.build_demo_data import DISTRICTS_PATH, NEIGHBORHOODS_PATH
from store import duty, grids
from tests.dispatch.incidents.world import START_S, World, utc

# Union Square (the world's CENTRE) lies in these two, which touch these (DataSF boundaries).
COMMUNITY = "community-financial-district-south-beach"
POLICE = "police-central"
NEAR_COMMUNITY = "community-tenderloin"
NEAR_POLICE = "police-southern"


def load_sf(world: World) -> GridIndex:
    """Import both levels (a day before the clock's start) and return the current index."""
    for path, level, prop in (
        (DISTRICTS_PATH, "police", "district"),
        (NEIGHBORHOODS_PATH, "community", "neighborhood"),
    ):
        doc = json.loads(path.read_text(encoding="utf-8"))
        grids.import_grids(world.engine, doc, level=level, name_property=prop, now=utc(START_S - 86400))
    return grids.load_index(world.engine)


def assign(world: World, unit_id: str, grid_id: str) -> None:
    """`unit_id` holds `grid_id` from an hour before the clock's start for a day."""
    start = utc(START_S - 3600)
    duty.create_assignment(
        world.engine,
        unit_id=unit_id,
        grid_id=grid_id,
        starts_at=start,
        ends_at=start + timedelta(days=1),
        actor="token:1:admin",
        now=start,
    )
