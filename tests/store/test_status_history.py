"""Unit statuses and their history on both stores: each change recorded in the same transaction (who,
from, to, when, why), a refused compare-and-set records nothing; migration step 8 on a database from
before it adds the tables and lets units take a `break`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from schemas.vocabulary import UNIT_STATUSES
from store import registry
from store.checks import set_allowed
from store.engine import open_engine
from store.migrate import detect_flavour, migrate
from store.settings import StoreSettings

NOW = datetime(2024, 5, 30, 17, 0, tzinfo=UTC)


def test_changes_are_recorded_with_who_and_why_and_refusals_record_nothing(store_url: str) -> None:
    engine = open_engine(store_url)
    registry.insert_unit(engine, id="u1", name="u1", kind="police", now=NOW)
    done = registry.change_unit_status(engine, "u1", "available", actor="device:p", why="shift", now=NOW)
    assert (done.found, done.before, done.written) == (True, "off_duty", True)
    later = NOW + timedelta(minutes=5)
    refused = registry.change_unit_status(engine, "u1", "busy", expected=("break",), actor="x", now=later)
    assert (refused.found, refused.before, refused.written) == (True, "available", False)
    same = registry.change_unit_status(engine, "u1", "available", actor="token:1:a", now=later)
    assert same.written
    missing = registry.change_unit_status(engine, "nobody", "available", actor="x", now=later)
    assert not missing.found
    history = registry.status_history(engine, "u1")
    assert [(c.from_status, c.to_status, c.actor, c.why, c.at) for c in history] == [
        ("off_duty", "available", "device:p", "shift", NOW)
    ]
    assert registry.status_history(engine, "u1", start=later) == []
    engine.dispose()


def test_step_8_upgrades_an_old_database(store_url: str) -> None:
    engine = open_engine(store_url)
    registry.insert_unit(engine, id="u1", name="u1", kind="police", now=NOW)
    with engine.begin() as conn:
        flavour, _ = detect_flavour(conn)
        for table in ("rollcall_units", "rollcalls", "checkins", "status_history"):
            conn.execute(text(f"DROP TABLE {table}"))
        set_allowed(conn, flavour, "units", "status", tuple(s for s in UNIT_STATUSES if s != "break"))
        conn.execute(text("DELETE FROM schema_version WHERE version = 8"))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("UPDATE units SET status = 'break' WHERE id = 'u1'"))
    assert migrate(engine, StoreSettings(database_url=store_url)).applied == (8,)
    engine.dispose()
    fresh = open_engine(store_url)  # a new connection reads the widened schema too
    assert registry.change_unit_status(fresh, "u1", "break", actor="device:p", now=NOW).written
    assert [c.to_status for c in registry.status_history(fresh, "u1")] == ["break"]
    assert migrate(fresh, StoreSettings(database_url=store_url)).applied == ()
    with pytest.raises(IntegrityError), fresh.begin() as conn:
        conn.execute(text("UPDATE units SET status = 'asleep' WHERE id = 'u1'"))
    fresh.dispose()
