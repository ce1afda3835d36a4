"""The audit log's hash chain on both stores: records written in any number of flushes chain on; an altered,
removed or reordered record is named by `verify` (and by `outpost audit verify`, exit 1); step 12 upgrades
an old log, whose records stay unchained before the chain begins."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from outpost.cli import main
from store import access
from store.audit_chain import GENESIS
from store.engine import open_engine
from store.migrate import detect_flavour, migrate
from store.settings import StoreSettings

T0 = datetime(2026, 11, 2, 8, 0, 0, 123456, tzinfo=UTC)


def _entries(n: int, start: int = 0) -> list[access.AuditEntry]:
    return [
        access.AuditEntry(T0 + timedelta(seconds=i), "token:1:a", "read_unit", f"u{i}", {"k": i, "x": [1.5]})
        for i in range(start, start + n)
    ]


def _write(engine: Engine) -> list[access.AuditEntry]:
    access.write_audit(engine, _entries(3))
    access.write_audit(engine, _entries(2, start=3))  # a second flush chains on from the first
    return access.read_audit(engine)


def test_records_chain_across_flushes_and_verify_reads_them_back(store_engine: Engine) -> None:
    stored = _write(store_engine)
    assert stored[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(stored))
    verdict = access.verify_audit(store_engine)
    assert verdict.intact and (verdict.records, verdict.head) == (5, stored[-1].hash)


@pytest.mark.parametrize(
    ("tamper", "why"),
    [
        ("UPDATE audit_log SET subject = 'u9' WHERE id = :id", "was altered"),
        ("UPDATE audit_log SET at = :later WHERE id = :id", "was altered"),
        ("DELETE FROM audit_log WHERE id = :id", "removed"),
        ("UPDATE audit_log SET hash = NULL, prev_hash = NULL WHERE id = :id", "erased"),
    ],
)
def test_a_tampered_record_is_named(store_engine: Engine, tamper: str, why: str) -> None:
    stored = _write(store_engine)
    victim = stored[2].id
    with store_engine.begin() as conn:
        conn.execute(text(tamper), {"id": victim, "later": T0 + timedelta(days=1)})
    verdict = access.verify_audit(store_engine)
    named = stored[3].id if why == "removed" else victim  # a removal shows at the record after it
    assert (verdict.broken_at, verdict.records, verdict.head) == (named, 2, stored[1].hash)
    assert why in verdict.reason


def test_two_records_swapped_are_found(store_engine: Engine) -> None:
    stored = _write(store_engine)
    a, b = stored[1], stored[2]
    with store_engine.begin() as conn:  # swap every column but the ids: the order is what changed
        for this, other in ((a, b), (b, a)):
            conn.execute(
                text(
                    "UPDATE audit_log SET subject = :s, at = :at, prev_hash = :p, hash = :h, detail = :d "
                    "WHERE id = :id"
                ),
                {
                    "s": other.subject,
                    "at": other.at,
                    "p": other.prev_hash,
                    "h": other.hash,
                    "d": f'{{"k": {other.detail["k"]}, "x": [1.5]}}',  # type: ignore[index]
                    "id": this.id,
                },
            )
    verdict = access.verify_audit(store_engine)
    assert verdict.broken_at == a.id and "reordered" in verdict.reason


def test_outpost_audit_verify_exits_1_on_a_broken_chain(
    store_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = open_engine(store_url)
    stored = _write(engine)
    monkeypatch.setenv("OUTPOST_DATABASE_URL", store_url)
    assert main(["audit", "verify"]) == 0
    assert str(stored[-1].hash) in capsys.readouterr().out
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'someone else' WHERE id = :id"), {"id": stored[0].id})
    engine.dispose()
    assert main(["audit", "verify"]) == 1
    assert f"broken at record {stored[0].id}" in capsys.readouterr().err


def test_step_12_upgrades_an_old_log(store_url: str) -> None:
    engine = open_engine(store_url)
    with engine.begin() as conn:
        flavour, _ = detect_flavour(conn)
        conn.execute(text("DROP INDEX ix_audit_log_subject"))
        for column in ("prev_hash", "hash"):
            conn.execute(text(f"ALTER TABLE audit_log DROP COLUMN {column}"))
        conn.execute(
            text("INSERT INTO audit_log (at, actor, action, subject) VALUES (:at, 'old', 'read_unit', 'u0')"),
            {"at": T0},
        )
        conn.execute(text("DELETE FROM schema_version WHERE version = 12"))
    engine.dispose()
    fresh = open_engine(store_url)
    assert migrate(fresh, StoreSettings(database_url=store_url)).applied == (12,)
    access.write_audit(fresh, _entries(2))
    old, *chained = access.read_audit(fresh)
    assert old.hash is None and chained[0].prev_hash == GENESIS
    verdict = access.verify_audit(fresh)
    assert verdict.intact and verdict.records == 2
    assert migrate(fresh, StoreSettings(database_url=store_url)).applied == ()
    fresh.dispose()
    assert flavour.dialect in ("postgresql", "sqlite")


def test_writers_of_several_processes_take_turns(store_url: str) -> None:
    """Each writer (an API process, `outpost roster import`) has its own engine; the chain never forks."""
    engines = [open_engine(store_url, pool_size=1) for _ in range(4)]

    def write(engine: Engine) -> None:
        for batch in range(10):
            access.write_audit(engine, _entries(3, start=batch * 3))

    def append(engine: Engine) -> None:  # the API's committer: a connection of its own
        appender = access.AuditAppender(engine)
        for batch in range(10):
            appender.write(_entries(3, start=batch * 3))
        appender.close()

    with ThreadPoolExecutor(len(engines)) as pool:
        list(pool.map(lambda job: job[0](job[1]), zip(itertools.cycle((write, append)), engines)))
    verdict = access.verify_audit(engines[0])
    for engine in engines:
        engine.dispose()
    assert verdict.intact and verdict.records == 4 * 10 * 3


def test_the_appender_chains_on_and_survives_a_lost_connection(store_engine: Engine) -> None:
    appender = access.AuditAppender(store_engine)
    access.write_audit(store_engine, _entries(2))
    appender.write(_entries(2, start=2))
    if store_engine.dialect.name == "postgresql":  # its held connection is cut: that batch fails, loudly
        with store_engine.begin() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        with pytest.raises(Exception, match=r"terminat|closed|connection"):
            appender.write(_entries(1, start=90))
    appender.write(_entries(2, start=4))  # the next one opens another connection
    appender.write(_entries(2, start=6))
    access.write_audit(store_engine, _entries(1, start=8))  # another writer moves the head
    appender.write(_entries(2, start=9))  # and this one chains on after it
    appender.write(_entries(1, start=11))
    appender.close()
    stored = access.read_audit(store_engine)
    assert [e.subject for e in stored] == [f"u{i}" for i in range(12)]
    assert [e.detail for e in stored] == [{"k": i, "x": [1.5]} for i in range(12)]
    verdict = access.verify_audit(store_engine)
    assert verdict.intact and verdict.records == 12
