"""Who leads: a session-level PostgreSQL advisory lock, held on a connection of its own.

One `outpost api` replica runs the incident loop's timers (offers, SLA deadlines, automatic re-dispatch);
whoever holds this lock is that replica (dispatch.leader). Session-level, so the lock lives exactly as long
as the holder's database session: a leader killed -9 closes its socket, PostgreSQL ends the session and
frees the lock at once, and the next replica to try takes it. A leader whose host vanishes without closing
the socket is noticed by TCP keepalives (the same settings as store.engine: about 25 s). The connection
is its own, outside the pool, so the pool's recycling and pre-ping never drop the lock by accident.

The holder's connection carries `application_name = outpost-lead:{name}`, which is how the others name the
leader (`holder`): from pg_locks and pg_stat_activity, no table needed.

SQLite has no other process to lead: `SoleLease` always holds.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

# pg_advisory_lock(int, int): the first key marks Outpost's locks ("op"), the second names the lock.
_OUTPOST_LOCKS = 0x6F70
INCIDENT_LEAD = 1
BROKER_ADMIN = 2  # the broker's dynamic-security admin: one exchange at a time across replicas
_APP_PREFIX = "outpost-lead:"
_HOLDER = text(
    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.classid = :c AND l.objid = :o AND l.objsubid = 2 AND l.granted"
)


class AdvisoryLease:
    """The lock `INCIDENT_LEAD` on a dedicated connection. Blocking: call it from a worker thread."""

    def __init__(self, engine: Engine, name: str, lock: int = INCIDENT_LEAD) -> None:
        self._engine = engine
        self._url = make_url(engine.url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.name = name[: 63 - len(_APP_PREFIX)]  # PostgreSQL keeps 63 bytes of an application_name
        self._lock = lock
        self._conn: psycopg.Connection[Any] | None = None

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; True if this session holds it now. Never waits for it."""
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(
                    self._url,
                    autocommit=True,
                    connect_timeout=5,
                    application_name=_APP_PREFIX + self.name,
                    keepalives=1,
                    keepalives_idle=10,
                    keepalives_interval=5,
                    keepalives_count=3,
                    tcp_user_timeout=30000,
                    # The same on the server's side of the socket: the client's settings do not reach it,
                    # and a server keeps a silent session (and its lock) for the OS default, about 2 hours.
                    options="-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5"
                    " -c tcp_keepalives_count=3 -c tcp_user_timeout=30000",
                )
            row = self._conn.execute(
                "SELECT pg_try_advisory_lock(%s, %s)", (_OUTPOST_LOCKS, self._lock)
            ).fetchone()
        except psycopg.Error as exc:
            log.warning("cannot try the incident lead: %s", exc)
            self.release()
            return False
        return bool(row and row[0])

    def held(self) -> bool:
        """Whether this session still holds the lock (False once the connection is gone)."""
        if self._conn is None or self._conn.closed:
            return False
        try:
            row = self._conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND objid = %s "
                "AND objsubid = 2 AND granted AND pid = pg_backend_pid()",
                (_OUTPOST_LOCKS, self._lock),
            ).fetchone()
        except psycopg.Error as exc:
            log.error("the incident lead's database session is gone: %s", exc)
            self.release()
            return False
        return bool(row and row[0])

    def holder(self) -> str | None:
        """The name of the replica holding the lock now, or None (nobody, or the database is away)."""
        try:
            with self._engine.connect() as conn:
                found = conn.execute(_HOLDER, {"c": _OUTPOST_LOCKS, "o": self._lock}).scalar()
        except Exception as exc:  # naming the leader is a courtesy in a refusal: never fail on it
            log.info("cannot name the incident leader: %s", exc)
            return None
        if not isinstance(found, str):
            return None
        return found.removeprefix(_APP_PREFIX)

    def release(self) -> None:
        """Close the session (which frees the lock)."""
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


class SoleLease:
    """The only process there is (SQLite, the `all` role): it always leads."""

    def __init__(self, name: str) -> None:
        self.name = name

    def try_acquire(self) -> bool:
        """Always True."""
        return True

    def held(self) -> bool:
        """Always True."""
        return True

    def holder(self) -> str | None:
        """This process."""
        return self.name

    def release(self) -> None:
        """Nothing to release."""


@contextlib.contextmanager
def taking_turns(engine: Engine, lock: int) -> Iterator[None]:
    """Hold `lock` (transaction-level, on a pooled connection) while the block runs, so that processes on
    the same database run it one at a time; on SQLite, only one process: no lock. Blocking."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:c, :o)"), {"c": _OUTPOST_LOCKS, "o": lock})
        yield
