"""The audit's group commit gathers before it commits (OUTPOST_AUDIT_COMMIT_GATHER_S): records made while it
yields the event loop join the same commit, a lone record is committed without waiting the bound, and
records that never stop coming do not hold the commit past it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine

from dispatch.audit import AuditLog
from dispatch.audit_journal import AuditJournal
from dispatch.clock import SystemClock
from store import access

_LIVENESS_S = 30.0  # a bound for a hung test only: nothing here is timed


@contextlib.asynccontextmanager
async def _committing(engine: Engine, tmp_path: Path, gather_s: float) -> AsyncIterator[AuditLog]:
    """An audit log with its committer running, as the app runs it."""
    audit = AuditLog(
        engine,
        SystemClock(),
        AuditJournal(tmp_path / "audit.jsonl"),
        required=True,
        window_s=0.0,
        gather_s=gather_s,
        retry_s=1.0,
        max_pending=100_000,
    )
    life = audit.lifecycle()
    await anext(life)
    try:
        yield audit
    finally:
        await anext(life, None)


def _commits() -> float:
    return REGISTRY.get_sample_value("outpost_audit_commits_total") or 0.0


async def _record_on_later_turns(audit: AuditLog, subjects: list[str]) -> None:
    """A request handled a turn of the loop after another: one record a turn."""
    for subject in subjects:
        await asyncio.sleep(0)
        audit.record("tok:1", "unit.read", subject)


@pytest.mark.parametrize("gather_s", [600.0, 0.0])
async def test_records_made_while_the_commit_gathers_share_it(
    pg_engine: Engine, tmp_path: Path, gather_s: float
) -> None:
    async with _committing(pg_engine, tmp_path, gather_s) as audit:
        before = _commits()
        audit.record("tok:1", "unit.read", "a")
        later = asyncio.create_task(_record_on_later_turns(audit, ["b", "c"]))
        await asyncio.wait_for(later, _LIVENESS_S)
        await asyncio.wait_for(audit.flush(), _LIVENESS_S)
        commits = _commits() - before
    assert [e.subject for e in access.read_audit(pg_engine)] == ["a", "b", "c"]
    if gather_s:
        assert commits == 1
    else:  # the first record leaves alone; the others follow in a commit of their own
        assert commits >= 2


async def test_a_lone_record_is_committed_without_waiting_the_bound(
    pg_engine: Engine, tmp_path: Path
) -> None:
    async with _committing(pg_engine, tmp_path, gather_s=600.0) as audit:
        audit.record("tok:1", "unit.read", "a")
        await asyncio.wait_for(audit.flush(), _LIVENESS_S)
    assert [e.subject for e in access.read_audit(pg_engine)] == ["a"]


async def test_records_that_never_stop_do_not_hold_the_commit_past_the_bound(
    pg_engine: Engine, tmp_path: Path
) -> None:
    stop = asyncio.Event()

    async def ceaseless(audit: AuditLog) -> None:
        n = 0
        while not stop.is_set():
            await asyncio.sleep(0)
            n += 1
            audit.record("tok:1", "unit.read", f"s{n}")

    async with _committing(pg_engine, tmp_path, gather_s=0.05) as audit:
        audit.record("tok:1", "unit.read", "a")
        stream = asyncio.create_task(ceaseless(audit))
        first = audit._open  # the batch holding "a"
        try:
            await asyncio.wait_for(first.settled.wait(), _LIVENESS_S)
        finally:
            stop.set()
            await stream
        assert first.refusal is None
        await asyncio.wait_for(audit.flush(), _LIVENESS_S)
    stored = [e.subject for e in access.read_audit(pg_engine)]
    assert stored[0] == "a" and len(stored) == len(set(stored)) > 1
