"""Migration step 6 on a database from before it (no `h3_cell`, no `import` source), on both stores: the
column appears, old incidents get their cells, `import` becomes a valid source; a second run changes nothing.
New incidents get their cell when inserted."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from geo.hexes import cell_of
from schemas.tables.incidents import SOURCES
from store import incidents
from store.engine import open_engine
from store.incident_cells import set_sources
from store.migrate import detect_flavour, migrate
from store.settings import StoreSettings

NOW = datetime(2024, 5, 30, 17, 0, tzinfo=UTC)
LON, LAT = -122.4194, 37.7793


def _incident(incident_id: str, source: str = "call") -> dict[str, object]:
    at = NOW.timestamp()
    return {
        "id": incident_id,
        "state": "new",
        "priority": "P3",
        "category": "fraud",
        "source": source,
        "lon": LON,
        "lat": LAT,
        "tier_entered_at": at,
        "created_by": "test",
        "reported_at": at,
    }


def _make_old(engine: Engine) -> None:
    """Undo step 6 as a database from before it would be."""
    with engine.begin() as conn:
        flavour, _ = detect_flavour(conn)
        conn.execute(text("ALTER TABLE incidents DROP COLUMN h3_cell"))
        set_sources(conn, flavour, tuple(s for s in SOURCES if s != "import"))
        conn.execute(text("DELETE FROM schema_version WHERE version = 6"))
        conn.execute(
            text(
                "INSERT INTO incidents (id, state, priority, category, source, lon, lat, tier_entered_at,"
                " created_by, reported_at) VALUES ('old', 'closed', 'P3', 'fraud', 'call', :lon, :lat, :t,"
                " 'test', :t)"
            ),
            {"lon": LON, "lat": LAT, "t": NOW},
        )


def test_step_6_upgrades_an_old_database(store_url: str) -> None:
    engine = open_engine(store_url)
    _make_old(engine)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("UPDATE incidents SET source = 'import' WHERE id = 'old'"))
    report = migrate(engine, StoreSettings(database_url=store_url))
    assert report.applied == (6,)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT h3_cell FROM incidents WHERE id = 'old'")).scalar() == cell_of(
            LON, LAT
        )
        incidents.insert_incident(conn, _incident("new-one", source="import"))
    assert migrate(engine, StoreSettings(database_url=store_url)).applied == ()
    engine.dispose()
    fresh = open_engine(store_url)  # a new connection reads the widened schema too
    with fresh.begin() as conn:
        incidents.insert_incident(conn, _incident("another", source="import"))
        with pytest.raises(IntegrityError), conn.begin_nested():
            incidents.insert_incident(conn, _incident("bad", source="rumour"))
    fresh.dispose()


def test_an_inserted_incident_gets_its_cell(store_url: str) -> None:
    engine = open_engine(store_url)
    with engine.begin() as conn:
        incidents.insert_incident(conn, _incident("i1"))
        cell = conn.execute(text("SELECT h3_cell FROM incidents WHERE id = 'i1'")).scalar()
    assert cell == cell_of(LON, LAT)
    engine.dispose()
