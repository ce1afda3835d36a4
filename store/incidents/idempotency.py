"""Idempotency-Key records: a retried request gets the response the first one got."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from store.incidents.rows import IDEMPOTENCY, to_datetime


@dataclass(frozen=True)
class StoredResponse:
    """An Idempotency-Key seen before: its request hash and, once finished, the response it got."""

    request_hash: str
    status: int | None  # None: the first request is still running
    response: Any


def claim_key(engine: Engine, scope: str, key: str, request_hash: str, at: float) -> StoredResponse | None:
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(IDEMPOTENCY).values(
                    scope=scope, key=key, request_hash=request_hash, created_at=to_datetime(at)
                )
            )
    except IntegrityError:
        with engine.connect() as conn:
            row = (
                conn.execute(
                    select(IDEMPOTENCY).where(and_(IDEMPOTENCY.c.scope == scope, IDEMPOTENCY.c.key == key))
                )
                .mappings()
                .first()
            )
        if row is None:  # purged in between: report it as still running, the client retries
            return StoredResponse(request_hash, None, None)
        return StoredResponse(row["request_hash"], row["status"], row["response"])
    return None


def complete_key(conn: Connection, scope: str, key: str, status: int, response: Any) -> None:
    """Store the response a claimed key's request got."""
    conn.execute(
        update(IDEMPOTENCY)
        .where(and_(IDEMPOTENCY.c.scope == scope, IDEMPOTENCY.c.key == key))
        .values(status=status, response=response)
    )


def release_key(conn: Connection, scope: str, key: str) -> None:
    """Forget a claimed key (its request failed on our side, so a retry must run again)."""
    conn.execute(IDEMPOTENCY.delete().where(and_(IDEMPOTENCY.c.scope == scope, IDEMPOTENCY.c.key == key)))


def purge_keys(conn: Connection, *, before: float) -> int:
    """Delete keys created before `before`; returns how many."""
    result = conn.execute(IDEMPOTENCY.delete().where(IDEMPOTENCY.c.created_at < to_datetime(before)))
    return int(result.rowcount)
