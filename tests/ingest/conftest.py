"""Fixtures of the ingest tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from store.engine import open_engine
from store.migrate import migrate
from store.settings import StoreSettings
from tests.support.services import PgCluster


@pytest.fixture
def own_cluster() -> Iterator[tuple[PgCluster, str]]:
    """A cluster of this test's own (stopping it must not disturb the session's), migrated."""
    cluster = PgCluster().start()
    try:
        cluster.psql("CREATE DATABASE chaos")
        url = cluster.url("chaos")
        engine = open_engine(url, pool_size=1)
        migrate(engine, StoreSettings(database_url=url))
        engine.dispose()
        yield cluster, url
    finally:
        cluster.close()
