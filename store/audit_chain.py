"""The audit log's hash chain: each record carries the hash of the record before it and its own hash over
both, so a record that is altered, removed or moved breaks the chain where it happened, and `verify`
names the first such record (`outpost audit verify`).

Writers append under one lock (PostgreSQL: a transaction-level advisory lock, so API replicas take turns;
SQLite: its single writer), reading the head and writing the new records in the same transaction. What
a chain cannot show is its own end cut off: `verify` prints the head hash, for the station to note
elsewhere (a printed report, a second system) and compare later.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Connection, Engine, select, text

from schemas.tables import Flavour
from store.columns import add_column
from store.times import as_utc

GENESIS = "0" * 64  # the `prev_hash` of the first record of the chain
_LOCK = 7_234_118_001  # pg_advisory_xact_lock key of the audit chain's writers
_PAGE = 5000


def record_hash(
    prev_hash: str, at: datetime, actor: str, action: str, subject: str, detail: dict[str, Any] | None
) -> str:
    """sha256 (hex) of one record and the hash before it, over a canonical JSON of its fields."""
    canonical = msgspec.json.encode(
        [prev_hash, as_utc(at).isoformat(timespec="microseconds"), actor, action, subject, detail],
        order="sorted",
    )
    return hashlib.sha256(canonical).hexdigest()


# The same lock and head read as one round trip (PostgreSQL, simple query protocol: run in order, the read
# under the lock). For the API's audit committer, which appends a batch every few milliseconds.
LOCK_AND_READ_HEAD_SQL = (
    f"SELECT pg_advisory_xact_lock({_LOCK}); "
    "SELECT hash FROM audit_log WHERE hash IS NOT NULL ORDER BY id DESC LIMIT 1"
)


def lock_and_read_head(conn: Connection, table: Any) -> str:
    """Take the writers' lock for this transaction and return the chain's head hash (GENESIS when empty)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
    elif not conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
        # pysqlite begins a transaction only at the first write: the head would be read outside the
        # transaction that appends after it, and two writers (the API, `outpost roster import`) could both
        # chain onto it. BEGIN IMMEDIATE takes SQLite's write lock before the read.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    head = conn.execute(
        select(table.c.hash).where(table.c.hash.is_not(None)).order_by(table.c.id.desc()).limit(1)
    ).scalar()
    return str(head) if head is not None else GENESIS


@dataclass(frozen=True)
class Verdict:
    """What a walk along the chain found."""

    records: int  # chained records read
    head: str  # the last good hash
    broken_at: int | None = None  # the id of the first record that does not fit
    reason: str = ""

    @property
    def intact(self) -> bool:
        """Whether every chained record fits."""
        return self.broken_at is None


def verify(engine: Engine, table: Any) -> Verdict:
    """Walk the chain in id order; the first record altered (its hash does not match its fields), or after
    a removal or a reordering (its `prev_hash` is not the hash of the record before it)."""
    expected, count = GENESIS, 0
    for row in _rows(engine, table):
        if row.hash is None:
            if count:
                return Verdict(count, expected, row.id, "has no hash inside the chain (its hash was erased)")
            continue  # written before the chain existed
        if row.prev_hash != expected:
            why = "does not follow the record before it: a record was removed or the records reordered"
            return Verdict(count, expected, row.id, why)
        fields = (row.at, row.actor, row.action, row.subject, row.detail)
        if record_hash(row.prev_hash, *fields) != row.hash:
            return Verdict(count, expected, row.id, "was altered: its fields do not match its hash")
        expected, count = row.hash, count + 1
    return Verdict(count, expected)


def _rows(engine: Engine, table: Any) -> Iterator[Any]:
    after = 0
    while True:
        with engine.connect() as conn:
            page = conn.execute(
                select(table).where(table.c.id > after).order_by(table.c.id).limit(_PAGE)
            ).all()
        if not page:
            return
        yield from page
        after = page[-1].id


def chain(head: str, records: Iterable[tuple[datetime, str, str, str, dict[str, Any] | None]]) -> list[str]:
    """The hashes of `records` appended after `head`, in order."""
    hashes = []
    for record in records:
        head = record_hash(head, *record)
        hashes.append(head)
    return hashes


def add_chain_columns(conn: Connection, flavour: Flavour, _settings: object) -> None:
    """Migration step 12: `audit_log.prev_hash` and `hash` (records before it stay unchained), and an index
    on the subject (who read this unit)."""
    add_column(conn, flavour, "audit_log", "prev_hash", "VARCHAR(64)")
    add_column(conn, flavour, "audit_log", "hash", "VARCHAR(64)")
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_audit_log_subject ON audit_log (subject)"))
