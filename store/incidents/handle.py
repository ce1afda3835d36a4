"""The incident loop's handle on the database: transactions, and the Idempotency-Key records."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine

from store.incidents import idempotency
from store.incidents.idempotency import StoredResponse
from store.incidents.reports import get_incident, insert_incident
from store.incidents.rows import IncidentRow
from store.incidents.timeline import insert_transition


class IncidentStore:
    """The incident loop's handle on the database: transactions, and the Idempotency-Key records.

    `begin()` yields a connection in a transaction for the module's query functions: one dispatch step
    commits or rolls back as a whole.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def dialect(self) -> str:
        """ "postgresql" or "sqlite"."""
        return self.engine.dialect.name

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection inside a transaction, committed on leaving, rolled back on an exception."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads."""
        with self.engine.connect() as conn:
            yield conn

    def create(self, values: Mapping[str, Any], *, actor: str, at: float, reason: str) -> IncidentRow:
        """Insert a new incident (version 1) with the first line of its audit trail, "create" → new."""
        with self.engine.begin() as conn:
            insert_incident(conn, {**values, "version": 1})
            insert_transition(
                conn,
                {
                    "incident_id": values["id"],
                    "seq": 1,
                    "event": "create",
                    "from_state": None,
                    "to_state": values["state"],
                    "from_tier": values["tier"],
                    "to_tier": values["tier"],
                    "at": at,
                    "actor": actor,
                    "reason": reason,
                },
            )
            row = get_incident(conn, values["id"])
        assert row is not None
        return row

    def claim_key(self, scope: str, key: str, request_hash: str, *, at: float) -> StoredResponse | None:
        """Claim an Idempotency-Key for a new request (None), or return what is stored under it."""
        return idempotency.claim_key(self.engine, scope, key, request_hash, at)

    def complete_key(self, scope: str, key: str, status: int, response: Any) -> None:
        """Store the response a claimed key's request got."""
        with self.engine.begin() as conn:
            idempotency.complete_key(conn, scope, key, status, response)

    def release_key(self, scope: str, key: str) -> None:
        """Forget a claimed key (its request failed on our side, so a retry must run again)."""
        with self.engine.begin() as conn:
            idempotency.release_key(conn, scope, key)

    def purge_keys(self, *, before: float) -> int:
        """Delete Idempotency-Key records created before `before`."""
        with self.engine.begin() as conn:
            return idempotency.purge_keys(conn, before=before)
