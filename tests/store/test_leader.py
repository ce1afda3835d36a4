"""The incident lead: one session holds the advisory lock at a time; the others see who; a dead session
frees it at once for the next to take."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from store.engine import open_engine
from store.leader import AdvisoryLease, SoleLease


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    engine = open_engine(pg_url, pool_size=2)
    yield engine
    engine.dispose()


def test_one_session_leads_and_the_others_name_it(engine: Engine) -> None:
    first, second = AdvisoryLease(engine, "api-1:8080:11"), AdvisoryLease(engine, "api-2:8080:12")
    try:
        assert first.try_acquire()
        assert first.try_acquire()  # re-entrant for its holder: still one lock
        assert not second.try_acquire()
        assert first.held() and not second.held()
        assert second.holder() == "api-1:8080:11"
        first.release()  # the session ends: the lock with it
        assert second.try_acquire()
        assert second.holder() == "api-2:8080:12"
        assert not first.held()
    finally:
        first.release()
        second.release()


def test_a_session_killed_by_the_server_frees_the_lock_and_its_holder_knows(engine: Engine) -> None:
    leader, next_one = AdvisoryLease(engine, "api-1"), AdvisoryLease(engine, "api-2")
    try:
        assert leader.try_acquire()
        with engine.begin() as conn:  # what PostgreSQL does when the leader's process dies (socket closed)
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :n"),
                {"n": "outpost-lead:api-1"},
            )
        assert not leader.held()  # the old leader sees it lost the lead
        assert next_one.try_acquire()
    finally:
        leader.release()
        next_one.release()


def test_sqlite_has_one_process_and_it_leads() -> None:
    lease = SoleLease(f"local:{os.getpid()}")
    assert lease.try_acquire() and lease.held()
    assert lease.holder() == lease.name
