"""The incident tables' own guards and the Idempotency-Key records, on PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, inspect

from store import incidents as db
from store import registry
from store.engine import open_engine

AT = 1_714_550_400.0


@pytest.fixture
def store(store_url: str) -> Iterator[db.IncidentStore]:
    engine = open_engine(store_url, pool_size=2)
    yield db.IncidentStore(engine)
    engine.dispose()


def _incident(store: db.IncidentStore, incident_id: str) -> None:
    values = {
        "id": incident_id,
        "state": "new",
        "priority": "P3",
        "category": "noise",
        "source": "call",
        "lon": -122.4,
        "lat": 37.78,
        "tier": 0,
        "tier_entered_at": AT,
        "reported_at": AT,
        "created_by": "token:1:t",
    }
    store.create(values, actor="token:1:t", at=AT, reason="test")


def _offer(incident_id: str, offer_id: str, unit_id: str) -> dict[str, object]:
    return {
        "id": offer_id,
        "incident_id": incident_id,
        "unit_id": unit_id,
        "slot": "any",
        "state": "pending",
        "automatic": False,
        "offered_by": "token:1:t",
        "offered_at": AT,
        "expires_at": AT + 60,
    }


def test_the_location_column_is_postgis_only_where_spatial(store: db.IncidentStore) -> None:
    columns = {c["name"] for c in inspect(store.engine).get_columns("incidents")}
    assert {"lon", "lat"} <= columns
    assert ("geom" in columns) == (store.dialect == "postgresql")


def test_a_unit_holds_one_pending_offer_whatever_the_fleet_says(store: db.IncidentStore) -> None:
    engine: Engine = store.engine
    registry.insert_unit(engine, id="u1", name="u1", kind="police", status="available", now=datetime.now(UTC))
    _incident(store, "i1")
    _incident(store, "i2")
    with store.begin() as conn:
        db.insert_offer(conn, _offer("i1", "o1", "u1"))
    with pytest.raises(db.UnitEngagedError), store.begin() as conn:
        db.insert_offer(conn, _offer("i2", "o2", "u1"))
    with store.begin() as conn:
        assert db.answer_offer(conn, "o1", "declined", by="device:p1", at=AT + 5)
        assert not db.answer_offer(conn, "o1", "accepted", by="device:p1", at=AT + 6)  # first answer wins
        db.insert_offer(conn, _offer("i2", "o2", "u1"))  # free again
    with store.read() as conn:
        assert [(o.id, o.state) for o in db.offers(conn, "i2")] == [("o2", "pending")]
        assert db.get_offer(conn, "o1") == db.OfferRow(
            id="o1",
            incident_id="i1",
            unit_id="u1",
            slot="any",
            state="declined",
            automatic=False,
            snapshot_id=None,
            offered_by="token:1:t",
            offered_at=AT,
            expires_at=AT + 60,
            answered_by="device:p1",
            answered_at=AT + 5,
        )


def test_a_stale_write_is_refused(store: db.IncidentStore) -> None:
    _incident(store, "i1")
    with store.begin() as conn:
        assert db.update_incident(conn, "i1", 1, {"state": "offered", "pending_offers": 1}) == 2
    with pytest.raises(db.StaleIncidentError), store.begin() as conn:
        db.update_incident(conn, "i1", 1, {"state": "cancelled"})
    with store.read() as conn:
        row = db.get_incident(conn, "i1")
    assert row is not None and (row.state, row.version, row.reported_at) == ("offered", 2, AT)


def test_idempotency_keys_claim_complete_replay_and_purge(store: db.IncidentStore) -> None:
    assert store.claim_key("token:1:a", "k1", "h1", at=AT) is None
    running = store.claim_key("token:1:a", "k1", "h1", at=AT + 1)
    assert running is not None and running.status is None
    store.complete_key("token:1:a", "k1", 201, {"body": {"id": "x"}, "content_type": "application/json"})
    done = store.claim_key("token:1:a", "k1", "h1", at=AT + 2)
    assert done is not None and done.status == 201 and done.response["body"] == {"id": "x"}
    assert store.claim_key("token:2:b", "k1", "h1", at=AT) is None  # another caller, another key
    store.release_key("token:2:b", "k1")
    assert store.claim_key("token:2:b", "k1", "h9", at=AT + 3) is None
    assert store.purge_keys(before=AT + 2) == 1
    assert store.claim_key("token:1:a", "k1", "h2", at=AT + 4) is None
