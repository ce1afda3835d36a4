"""What a database error means for the caller: "not now" (keep the data, retry) or "not this" (content).

Three kinds, told apart by the driver's error class (psycopg maps SQLSTATE classes onto them):

- content (`is_content_error`): SQLSTATE class 22 data exception and 23 integrity violation (psycopg
  DataError / IntegrityError, sqlite3's of the same names). Retrying the same rows will fail again; the
  caller isolates the offending rows.
- unavailable (`is_unavailable`): the database cannot take this right now: refused or lost connection,
  shutdown, timeouts, locks, disk full, a read-only server after a failover (25006, psycopg InternalError),
  privileges missing (42501), a closed connection (InterfaceError), an exhausted pool. The caller keeps
  the data (ingest spools it) and retries.
- anything else is a bug (a wrong query, a missing table): it propagates.
"""

from __future__ import annotations

import sqlite3

import psycopg
from sqlalchemy import exc as sa_exc


class StoreUnavailable(Exception):  # noqa: N818 (the name other modules rely on)
    """The database cannot be reached or cannot take writes right now; keep the data and retry later."""


# Extended result names of SQLite errors that mean "not now" rather than "bug". READONLY: the file or its
# filesystem cannot be written right now (remounted read-only, permissions), like a read-only primary.
SQLITE_TRANSIENT = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_FULL",
    "SQLITE_IOERR",
    "SQLITE_CANTOPEN",
    "SQLITE_READONLY",
)
# SQLSTATE classes 22 and 23.
_CONTENT_ERRORS = (psycopg.DataError, psycopg.IntegrityError, sqlite3.DataError, sqlite3.IntegrityError)
# psycopg errors whose class is "programming" or "database" but whose cause is the server's state:
# 42501 insufficient_privilege (roles differ on the new primary, or a revoked grant), 25 invalid
# transaction state (25006 read_only_sql_transaction), 08 connection, 28 authorization, 40 rollback,
# 53 resources, 55 object not in prerequisite state, 57 operator intervention, 58 system error, XX internal.
_PG_UNAVAILABLE_STATES = ("42501",)
_PG_UNAVAILABLE_CLASSES = ("08", "25", "28", "40", "53", "55", "57", "58", "XX")


def sqlite_error_name(exc: sqlite3.Error) -> str:
    """SQLite's extended result name of `exc` (e.g. "SQLITE_BUSY_SNAPSHOT"), or "" if unknown."""
    return str(getattr(exc, "sqlite_errorname", ""))


def _driver_error(exc: BaseException) -> BaseException:
    """The DBAPI error inside SQLAlchemy's wrapper (or `exc` itself)."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        return exc.orig
    return exc


def is_content_error(exc: BaseException) -> bool:
    """Whether the database refused the rows themselves (SQLSTATE class 22 or 23): retrying cannot help,
    isolating the offending rows can."""
    return isinstance(_driver_error(exc), _CONTENT_ERRORS)


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database cannot be used right now (as opposed to bad rows or a bug)."""
    if isinstance(exc, (StoreUnavailable, sa_exc.TimeoutError)):  # TimeoutError: the pool is exhausted
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    orig = _driver_error(exc)
    if isinstance(orig, psycopg.Error):
        return _pg_unavailable(orig)
    if isinstance(orig, sqlite3.OperationalError):
        return sqlite_error_name(orig).startswith(SQLITE_TRANSIENT)
    return False


def _pg_unavailable(exc: psycopg.Error) -> bool:
    if isinstance(exc, _CONTENT_ERRORS):
        return False
    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError, psycopg.InternalError)):
        # Refused, admin shutdown, lost or closed connection, statement/lock timeout, serialization
        # failure, disk full, read-only transaction (a write reaching a demoted primary).
        return True
    state = exc.sqlstate or ""
    return state in _PG_UNAVAILABLE_STATES or state[:2] in _PG_UNAVAILABLE_CLASSES


def unavailable_reason(exc: BaseException) -> str | None:
    """The driver's own words (first line) when `exc` means the database cannot be used, else None: what an
    operator needs in the one line a command ends with (the server down, a wrong password, no such file)."""
    if not is_unavailable(exc) and not isinstance(_driver_error(exc), psycopg.OperationalError):
        return None
    words = str(_driver_error(exc)).strip().splitlines()
    return words[0] if words else type(exc).__name__


def content_refusal(exc: BaseException) -> tuple[bool, str] | None:
    """When the database refused the request's values themselves: (whether it is an integrity violation,
    i.e. a clash with stored rows, rather than a value it cannot hold), and the driver's first line (no SQL,
    no parameters). None for any other error."""
    if not is_content_error(exc):
        return None
    orig = _driver_error(exc)
    words = str(orig).strip().splitlines()
    integrity = isinstance(orig, (psycopg.IntegrityError, sqlite3.IntegrityError))
    return integrity, words[0] if words else type(orig).__name__
