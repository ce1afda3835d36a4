"""Migration step 9 on a database from before it, on both stores: the incidents' grid and merge columns
added, existing incidents placed in the current grids, `merged` allowed as a state; a second run is a
no-op."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from schemas.tables.incidents import INCIDENT_STATES
from store.checks import set_allowed
from store.engine import open_engine
from store.migrate import detect_flavour, migrate
from store.settings import StoreSettings
from tests.dispatch.incidents.sf_grids import COMMUNITY, POLICE, load_sf
from tests.dispatch.incidents.world import world_on


async def test_step_9_upgrades_an_old_database(store_url: str) -> None:
    async with world_on(store_url) as world:
        load_sf(world)
        incident_id = await world.report("P3")
    engine = open_engine(store_url)
    with engine.begin() as conn:
        flavour, _ = detect_flavour(conn)
        conn.execute(text("DROP INDEX ix_incidents_merged_into"))
        for column in ("community_grid_id", "police_grid_id", "merged_into"):
            conn.execute(text(f"ALTER TABLE incidents DROP COLUMN {column}"))
        set_allowed(conn, flavour, "incidents", "state", tuple(s for s in INCIDENT_STATES if s != "merged"))
        conn.execute(text("DELETE FROM schema_version WHERE version = 9"))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("UPDATE incidents SET state = 'merged' WHERE id = :id"), {"id": incident_id})
    assert migrate(engine, StoreSettings(database_url=store_url)).applied == (9,)
    engine.dispose()
    fresh = open_engine(store_url)  # a new connection reads the widened schema too
    with fresh.begin() as conn:
        placed = conn.execute(
            text("SELECT community_grid_id, police_grid_id, merged_into FROM incidents WHERE id = :id"),
            {"id": incident_id},
        ).one()
        assert tuple(placed) == (COMMUNITY, POLICE, None)
        conn.execute(text("UPDATE incidents SET state = 'merged' WHERE id = :id"), {"id": incident_id})
    assert migrate(fresh, StoreSettings(database_url=store_url)).applied == ()
    with pytest.raises(IntegrityError), fresh.begin() as conn:
        conn.execute(text("UPDATE incidents SET state = 'asleep' WHERE id = :id"), {"id": incident_id})
    fresh.dispose()
