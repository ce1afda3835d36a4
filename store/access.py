"""Queries of access control: API tokens (stored as sha256 digests) and the audit log of location reads."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
import psycopg
from sqlalchemy import Connection, Engine, MetaData, Table, select, update

from schemas.credentials import new_secret, token_digest
from schemas.tables import access as access_tables
from schemas.tables.access import ROLES
from store import audit_chain
from store.rows import narrowed, record_of
from store.times import as_utc

_json = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A token's identity and role; the token itself is never stored."""

    id: int
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Who read which location (a unit, an area, a point), and when."""

    at: datetime
    actor: str
    action: str
    subject: str
    detail: dict[str, Any] | None = None
    id: int | None = field(default=None, compare=False)
    prev_hash: str | None = field(default=None, compare=False)  # the chain (store.audit_chain), once stored
    hash: str | None = field(default=None, compare=False)


_md = MetaData()
access_tables.define(_md)
api_tokens: Table = _md.tables["api_tokens"]
audit_log: Table = _md.tables["audit_log"]


def create_token(engine: Engine, *, role: str, name: str, now: datetime) -> tuple[ApiToken, str]:
    """Create a token; returns its record and the secret token, which exists nowhere else afterwards."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    secret = new_secret(32)
    with engine.begin() as conn:
        result = conn.execute(
            api_tokens.insert().values(
                name=name, role=role, token_hash=token_digest(secret), created_at=as_utc(now)
            )
        )
        token_id = int(result.inserted_primary_key[0]) if result.inserted_primary_key else 0
    return ApiToken(id=token_id, name=name, role=role, created_at=as_utc(now), revoked_at=None), secret


def find_token(engine: Engine, secret: str) -> ApiToken | None:
    """The live (not revoked) token whose secret this is, or None."""
    with engine.connect() as conn:
        row = conn.execute(
            select(api_tokens).where(
                api_tokens.c.token_hash == token_digest(secret), api_tokens.c.revoked_at.is_(None)
            )
        ).first()
    if row is None:
        return None
    m = row._mapping
    return ApiToken(
        id=int(m["id"]), name=m["name"], role=m["role"], created_at=as_utc(m["created_at"]), revoked_at=None
    )


def list_tokens(engine: Engine) -> list[ApiToken]:
    """Every token, revoked ones included, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(api_tokens).order_by(api_tokens.c.id)).all()
    return [
        ApiToken(
            id=int(r.id),
            name=r.name,
            role=r.role,
            created_at=as_utc(r.created_at),
            revoked_at=as_utc(r.revoked_at) if r.revoked_at else None,
        )
        for r in rows
    ]


def revoke_token(engine: Engine, token_id: int, *, now: datetime) -> bool:
    """Revoke a live token; False when there is no such live token."""
    with engine.begin() as conn:
        result = conn.execute(
            update(api_tokens)
            .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=as_utc(now))
        )
    return result.rowcount == 1


def write_audit(engine: Engine, entries: Sequence[AuditEntry]) -> None:
    """Append audit entries in one transaction, each chained to the one before (`store.audit_chain`: the
    head is read and the records written under the writers' lock, in the same transaction).

    Every location read is audited, so at a few thousand requests a second a flush carries ~1,700 entries;
    as an INSERT SQLAlchemy builds and binds each row in Python, holding the GIL ~10 ms in the worker
    thread, and the API's event loop waits for it (bench_http_nearest, 16 requests in flight: p99 24-33 ms,
    10 ms without the audit). On PostgreSQL, COPY hands psycopg the rows as they are.
    """
    if not entries:
        return
    with engine.begin() as conn:
        _append(conn, audit_chain.lock_and_read_head(conn, audit_log), entries)


class AuditAppender:
    """`write_audit` for one caller that appends often (the API's group commit): on PostgreSQL over a
    connection of its own, in three round trips a batch (lock and head, COPY, COMMIT) where `write_audit`
    takes a pool checkout with its ping, and the lock, the head and the COPY one statement each.

    At 1,000 audited reads a second a batch commits every few milliseconds, and each round trip costs the
    worker thread the GIL as well as the wait (bench_http_designs' py-spy: the commits were a sixth of
    `outpost run`'s CPU). A connection that fails is dropped; the next batch opens another. One caller at a
    time (calls are not concurrent); SQLite goes through `write_audit`.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Any = None  # SQLAlchemy's pooled DBAPI connection, held between batches

    def write(self, entries: Sequence[AuditEntry]) -> None:
        """Append `entries` as `write_audit` does (chained, in one transaction)."""
        if not entries:
            return
        if self._engine.dialect.name != "postgresql":
            write_audit(self._engine, entries)
            return
        if self._conn is None:
            self._conn = self._engine.raw_connection()
        pg: psycopg.Connection[Any] = self._conn.driver_connection
        try:
            with pg.cursor() as cur:
                cur.execute(audit_chain.LOCK_AND_READ_HEAD_SQL)
                cur.nextset()
                row = cur.fetchone()
                head = str(row[0]) if row is not None else audit_chain.GENESIS
                fields = [(as_utc(e.at), e.actor, e.action, e.subject, e.detail) for e in entries]
                _copy_rows(cur, head, fields)
            pg.commit()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Give the connection up (rolled back and discarded: a failed one is not returned to the pool)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()


def write_audit_once(engine: Engine, entries: Sequence[AuditEntry]) -> bool:
    """Append `entries` like `write_audit` unless this exact run of records is in the log already; True when
    written. For a local journal shipped again after a crash cut short its removal: a shipment is one
    transaction, so either all of it is there, in order, or none of it."""
    if not entries:
        return False
    with engine.begin() as conn:
        head = audit_chain.lock_and_read_head(conn, audit_log)
        if _stored_already(conn, entries):
            return False
        _append(conn, head, entries)
    return True


def _append(conn: Connection, head: str, entries: Sequence[AuditEntry]) -> None:
    fields = [(as_utc(e.at), e.actor, e.action, e.subject, e.detail) for e in entries]
    if conn.dialect.name == "postgresql":
        driver: psycopg.Connection[Any] = conn.connection.driver_connection  # type: ignore[assignment]
        with driver.cursor() as cur:
            _copy_rows(cur, head, fields)
    else:
        names = ("at", "actor", "action", "subject", "detail", "prev_hash", "hash")
        conn.execute(audit_log.insert(), [dict(zip(names, r, strict=True)) for r in _chained(head, fields)])


def _chained(head: str, fields: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Each record's fields followed by its prev_hash and hash, chained on from `head`."""
    hashes = audit_chain.chain(head, fields)
    return [(*f, prev, h) for f, prev, h in zip(fields, [head, *hashes[:-1]], hashes, strict=True)]


def _stored_already(conn: Connection, entries: Sequence[AuditEntry]) -> bool:
    """Whether the log holds `entries` as consecutive records (looked for from where the first could be)."""
    c, first = audit_log.c, entries[0]
    wanted = [(as_utc(e.at), e.actor, e.action, e.subject, e.detail) for e in entries]
    starts = conn.execute(
        select(c.id)
        .where(c.at == as_utc(first.at), c.actor == first.actor, c.action == first.action)
        .where(c.subject == first.subject)
        .order_by(c.id.desc())
        .limit(16)
    ).scalars()
    for start in list(starts):
        run = conn.execute(
            select(c.at, c.actor, c.action, c.subject, c.detail)
            .where(c.id >= start)
            .order_by(c.id)
            .limit(len(entries))
        ).all()
        if [(as_utc(r.at), r.actor, r.action, r.subject, r.detail) for r in run] == wanted:
            return True
    return False


_AUDIT_COPY = "COPY audit_log (at, actor, action, subject, detail, prev_hash, hash) FROM STDIN"


def _copy_rows(cur: psycopg.Cursor[Any], head: str, fields: Sequence[tuple[Any, ...]]) -> None:
    """COPY the records, chained on from `head`: psycopg takes the rows as they are (no per-row binding)."""
    with cur.copy(_AUDIT_COPY) as copy:
        for at, actor, action, subject, detail, prev, digest in _chained(head, fields):
            encoded = None if detail is None else _json(detail).decode()
            copy.write_row((at, actor, action, subject, encoded, prev, digest))


def verify_audit(engine: Engine) -> audit_chain.Verdict:
    """Walk the audit log's hash chain (see `store.audit_chain.verify`)."""
    return audit_chain.verify(engine, audit_log)


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which audit records: in [since, until) (either None: unbounded), by one actor, of one action, of one
    subject (who looked at it: `u1` for a unit's detail, `unit:u1` for its track; see the routes)."""

    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    action: str | None = None
    subject: str | None = None


def read_audit(
    engine: Engine, query: AuditQuery = AuditQuery(), *, after_id: int = 0, limit: int = 1000
) -> list[AuditEntry]:
    """The audit records `query` names, oldest first, with ids above `after_id` (the next page)."""
    c, q = audit_log.c, query
    selected = narrowed(
        select(audit_log).where(c.id > after_id).order_by(c.id).limit(limit),
        [(c.actor, q.actor), (c.action, q.action), (c.subject, q.subject)],
        ts=c.at,
        start=q.since,
        end=q.until,
    )
    with engine.connect() as conn:
        rows = conn.execute(selected).all()
    return [record_of(AuditEntry, r) for r in rows]
