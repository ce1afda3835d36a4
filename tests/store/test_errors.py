"""The line between "not now" (StoreUnavailable), "not these rows" (content) and a bug, with errors raised by
a real PostgreSQL: a read-only server (a write reaching a demoted primary), missing privileges, a closed
connection, bad rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from schemas.fix import Fix, RejectedMessage
from store.engine import open_engine
from store.errors import is_content_error, is_unavailable
from store.fixes import FixWriter, StoreUnavailable, count_fixes, count_rejected

T0 = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def fix(seq: int, device: str = "a") -> Fix:
    return Fix(
        device_id=device, ts=T0 + timedelta(seconds=seq), lon=-122.4, lat=37.7, received_at=T0, seq=seq
    )


def dead_letter() -> RejectedMessage:
    return RejectedMessage(received_at=T0, source="t", reasons=("invalid_json",), raw=b"{")


def admin(pg_url: str) -> psycopg.Connection[tuple[object, ...]]:
    # Read-write whatever the database default is: the way back from the read-only state.
    return psycopg.connect(pg_url, autocommit=True, options="-c default_transaction_read_only=off")


@pytest.fixture
def read_only_engine(pg_url: str) -> Iterator[Engine]:
    """A fresh engine on the test database while the server refuses writes, as a demoted primary does."""
    with admin(pg_url) as conn:
        conn.execute(f'ALTER DATABASE "{make_url(pg_url).database}" SET default_transaction_read_only = on')
    engine = open_engine(pg_url, pool_size=1)
    yield engine
    engine.dispose()
    with admin(pg_url) as conn:
        conn.execute(f'ALTER DATABASE "{make_url(pg_url).database}" RESET default_transaction_read_only')


def test_a_read_only_server_is_unavailable_for_fixes_and_dead_letters(
    read_only_engine: Engine, pg_url: str
) -> None:
    writer = FixWriter(read_only_engine)
    with pytest.raises(StoreUnavailable) as caught:
        writer.write([fix(1)])
    assert isinstance(caught.value.__cause__, psycopg.errors.ReadOnlySqlTransaction)
    with pytest.raises(StoreUnavailable):
        writer.write_rejected([dead_letter()])
    # The same engine writes again once the server takes writes (a failover completed).
    with admin(pg_url) as conn:
        conn.execute(f'ALTER DATABASE "{make_url(pg_url).database}" RESET default_transaction_read_only')
    read_only_engine.dispose()
    assert writer.write([fix(1)]) == 1
    writer.write_rejected([dead_letter()])
    assert (count_fixes(read_only_engine), count_rejected(read_only_engine)) == (1, 1)


def test_missing_privileges_are_unavailable(pg_engine: Engine, pg_url: str) -> None:
    role = f"outpost_noprivs_{uuid.uuid4().hex[:8]}"
    with admin(pg_url) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
    engine = open_engine(make_url(pg_url).set(username=role).render_as_string(False), pool_size=1)
    try:
        with pytest.raises(StoreUnavailable) as caught:
            FixWriter(engine).write([fix(1)])
        assert isinstance(caught.value.__cause__, psycopg.errors.InsufficientPrivilege)
        with pytest.raises(StoreUnavailable):
            FixWriter(engine).write_rejected([dead_letter()])
    finally:
        engine.dispose()
        with admin(pg_url) as conn:
            conn.execute(f"DROP ROLE {role}")
    assert count_fixes(pg_engine) == 0


def test_a_closed_connection_is_unavailable_and_bad_rows_are_content(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        cur = conn.cursor()
        cur.close()
        with pytest.raises(psycopg.InterfaceError) as closed:
            cur.execute("SELECT 1")
    assert is_unavailable(closed.value) and not is_content_error(closed.value)
    with psycopg.connect(pg_url) as conn, pytest.raises(psycopg.DataError) as bad:
        conn.execute("SELECT 'x'::int")
    assert is_content_error(bad.value) and not is_unavailable(bad.value)
    with psycopg.connect(pg_url) as conn, pytest.raises(psycopg.IntegrityError) as dup:
        conn.execute(
            "INSERT INTO fixes (device_id, ts, received_at, lon, lat) VALUES (NULL, now(), now(), 0, 0)"
        )
    assert is_content_error(dup.value) and not is_unavailable(dup.value)
    with psycopg.connect(pg_url) as conn, pytest.raises(psycopg.ProgrammingError) as bug:
        conn.execute("SELECT * FROM no_such_table")
    assert not is_unavailable(bug.value) and not is_content_error(bug.value)
