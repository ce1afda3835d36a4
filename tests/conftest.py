"""Fixtures: a real PostgreSQL cluster with PostGIS and Outpost's schema in a template database, a real
Mosquitto per test, and the embedded SQLite store. Nothing is mocked."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_postgresql.janitor import DatabaseJanitor
from sqlalchemy import Engine

from store.engine import open_engine
from store.migrate import migrate
from store.settings import StoreSettings
from tests.support.services import SHARED_DATA, Mosquitto, PgCluster

TEMPLATE_DB = "outpost_template"
_db_names = (f"outpost_test_{i}" for i in itertools.count())


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One PostgreSQL cluster for the session, with the schema migrated into a template database."""
    cluster = PgCluster().start()
    try:
        cluster.psql(f"CREATE DATABASE {TEMPLATE_DB}")
        engine = open_engine(cluster.url(TEMPLATE_DB), pool_size=1)
        migrate(engine, StoreSettings(database_url=cluster.url(TEMPLATE_DB)))
        engine.dispose()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh database cloned from the migrated template; dropped after the test."""
    name = next(_db_names)
    janitor = DatabaseJanitor(
        user=pg_cluster.user, host="127.0.0.1", port=pg_cluster.port, dbname=name, template_dbname=TEMPLATE_DB
    )
    janitor.init()
    try:
        yield pg_cluster.url(name)
    finally:
        janitor.drop()


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = open_engine(pg_url, pool_size=4)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A migrated embedded store in a temporary folder."""
    url = f"sqlite:///{tmp_path / 'outpost.db'}"
    engine = open_engine(url, pool_size=1)
    migrate(engine, StoreSettings(database_url=url))
    engine.dispose()
    return url


@pytest.fixture(params=["postgresql", "sqlite"])
def store_url(request: pytest.FixtureRequest) -> str:
    """The same behavioural test against both stores: PostgreSQL/PostGIS and the embedded SQLite."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return str(request.getfixturevalue("sqlite_url"))


@pytest.fixture
def store_engine(store_url: str) -> Iterator[Engine]:
    """An engine on `store_url` (both stores), disposed after the test."""
    engine = open_engine(store_url, pool_size=2)
    yield engine
    engine.dispose()


@pytest.fixture
def mosquitto() -> Iterator[Mosquitto]:
    """A real Mosquitto on a free port, with the queue limits Outpost ships."""
    broker = Mosquitto().start()
    yield broker
    broker.close()


@pytest.fixture
def shared_data() -> Path:
    """../shared/data (San Francisco data); tests that need it skip with the reason where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not present: the San Francisco data lies beside CI's clone, not in it")
    return SHARED_DATA
