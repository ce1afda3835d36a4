"""Opening the database: URL parsing, pooling and per-connection settings."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url


class CannotStart(RuntimeError):  # noqa: N818 (reads as a verdict)
    """The database cannot serve Outpost as configured; the message is the one line an operator needs (what
    is missing and what to install or set), printed by the CLI without a traceback."""


class UnsupportedDatabase(CannotStart, ValueError):  # noqa: N818 (reads as a verdict)
    """OUTPOST_DATABASE_URL names a database Outpost cannot use."""


def open_engine(url: str, *, pool_size: int = 8, sqlite_busy_timeout_ms: int = 10000) -> Engine:
    """A pooled engine for `postgresql://…` or `sqlite:///path` (the file's folder is created).

    `sqlite_busy_timeout_ms`: how long a SQLite writer waits for another writer's lock before giving up.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            hide_parameters=True,  # an error names its SQL, never its values (token hashes, positions)
            # A dead server must fail fast, so ingest can spool instead of hanging: connect_timeout covers a
            # refused or silent connect; keepalives and tcp_user_timeout cover a server (or its host) that
            # vanishes mid-transaction without closing the socket, which would otherwise block ~15 minutes.
            connect_args={
                "connect_timeout": 5,
                "application_name": "outpost",
                "keepalives": 1,
                "keepalives_idle": 10,
                "keepalives_interval": 5,
                "keepalives_count": 3,
                "tcp_user_timeout": 30000,  # ms: unacknowledged data for this long drops the connection
            },
        )
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, pool_size=pool_size, max_overflow=pool_size, hide_parameters=True)
        event.listen(engine, "connect", partial(_sqlite_pragmas, busy_timeout_ms=sqlite_busy_timeout_ms))
        return engine
    raise UnsupportedDatabase(
        f"OUTPOST_DATABASE_URL uses {backend!r}: use postgresql://user:password@host:port/db "
        "or sqlite:///path/to/outpost.db"
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, *, busy_timeout_ms: int) -> None:
    cursor = dbapi_conn.cursor()
    # WAL lets the API read while ingest writes; synchronous=FULL makes every commit survive power loss,
    # which is what "acknowledged once durable" means. Batching keeps the fsync cost per fix small.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    cursor.close()
