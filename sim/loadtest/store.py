"""Reading back what Outpost stored for one run (fixes and dead letters), through the schema's own tables.

The oracle reads the database as an outside auditor would: with a connection of its own (`open_readonly`)
and the published table definitions (`schemas.tables`), never through Outpost's storage code, which is part
of what it checks. The queries are read-only and filtered by the run's device-id prefix, so a load test
against a production database only ever sees its own rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, Engine, Table, create_engine, func, or_, select
from sqlalchemy.engine import make_url

from schemas.tables import Flavour, build_metadata

_FETCH_ROWS = 10_000


def open_readonly(url: str) -> Engine:
    """An engine for `postgresql://…` (through psycopg) or `sqlite:///path`, for the oracle's reads."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, pool_size=2, pool_pre_ping=True)


@dataclass(frozen=True, slots=True)
class StoredFix:
    """The oracle's view of one `fixes` row."""

    device_id: str
    seq: int | None
    ts: datetime
    received_at: datetime


class RunStore:
    """The rows one run left in `fixes` and `rejected_messages`."""

    def __init__(self, engine: Engine, run_tag: str) -> None:
        """`run_tag` is `lt-<run id>`: every device id of the run starts with it, in every input format."""
        self.engine = engine
        self.prefix = run_tag
        md = build_metadata(Flavour(dialect=engine.dialect.name))
        self.fixes: Table = md.tables["fixes"]
        self.rejected: Table = md.tables["rejected_messages"]

    def stored_fixes(self) -> Iterator[StoredFix]:
        """Every fix of the run's devices (streamed)."""
        f = self.fixes.c
        query = select(f.device_id, f.seq, f.ts, f.received_at).where(f.device_id.like(self.prefix + "%"))
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=_FETCH_ROWS).execute(query)
            for device_id, seq, ts, received_at in result:
                yield StoredFix(device_id, seq, utc(ts), utc(received_at))

    def fixes_since(self, since: datetime) -> list[tuple[str, int | None, datetime]]:
        """(device_id, seq, ts) of the run's fixes with ts >= since: the commit watcher's poll."""
        f = self.fixes.c
        query = select(f.device_id, f.seq, f.ts).where(f.ts >= since, f.device_id.like(self.prefix + "%"))
        with self.engine.connect() as conn:
            return [(d, s, utc(t)) for d, s, t in conn.execute(query)]

    def counts(self) -> tuple[int, int]:
        """(fixes, dead letters) of the run so far: the drain waits for these to settle."""
        f = self.fixes.c
        with self.engine.connect() as conn:
            fixes = conn.execute(select(func.count()).where(f.device_id.like(self.prefix + "%"))).scalar_one()
            rejected = conn.execute(select(func.count()).where(self._rejected_of_run())).scalar_one()
        return int(fixes), int(rejected)

    def _rejected_of_run(self) -> ColumnElement[bool]:
        r = self.rejected.c
        return or_(r.device_id.like(self.prefix + "%"), r.source.like("%" + self.prefix + "%"))

    def rejected_reasons(self) -> list[list[str]]:
        """The reasons of every dead letter of the run (matched by device id, or by topic when the id is
        unknown, as for unparseable payloads)."""
        query = select(self.rejected.c.reasons).where(self._rejected_of_run())
        with self.engine.connect() as conn:
            return [_reasons(value) for (value,) in conn.execute(query)]


def utc(value: datetime | str) -> datetime:
    """A timezone-aware UTC datetime (SQLite hands back naive UTC datetimes, or strings through raw SQL)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _reasons(value: object) -> list[str]:
    if isinstance(value, str | bytes):
        value = json.loads(value)
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]
