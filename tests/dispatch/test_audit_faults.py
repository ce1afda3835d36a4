"""The audit when the database refuses it: required mode answers 503 with no position, the default answers
from the fsynced local journal and ships it later; nothing recorded is lost, nothing doubled."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from dispatch.audit import AuditLog
from dispatch.audit_changes import CHANGE_ANSWERED, CHANGE_REQUESTED
from dispatch.audit_journal import AuditJournal
from dispatch.keys import AUDIT_KEY
from dispatch.problems import Unavailable
from dispatch.settings import ApiSettings
from outpost.cli import main
from store import access
from tests.dispatch.conftest import START_S, LiveApi, fix, refuse_audit, refusing_engine, running_api

AT = datetime.fromtimestamp(START_S, UTC)


@contextlib.asynccontextmanager
async def _api(url: str, tmp_path: Path, **settings: object) -> AsyncIterator[tuple[LiveApi, AuditLog]]:
    journal = str(tmp_path / "journal" / "audit.jsonl")
    # audit_retry_s=0: every batch tries the database, so a test need not wait for the database's return.
    chosen = ApiSettings(audit_journal_path=journal, audit_retry_s=0, **settings)  # type: ignore[arg-type]
    async with running_api(url, settings=chosen) as api:
        unit = {"id": "u1", "name": "A", "kind": "police", "status": "available"}
        await api.json("POST", "/v1/units", json=unit, status=201)
        api.fleet.apply([fix("d1", "u1", 4.35, 50.85, START_S)])
        yield api, api.app[AUDIT_KEY]


def _reads(engine: Engine) -> list[access.AuditEntry]:
    """The audit log without the records of the changes the tests set up with (tests/dispatch/
    test_audit_changes.py has those)."""
    return [e for e in access.read_audit(engine) if e.action not in (CHANGE_REQUESTED, CHANGE_ANSWERED)]


async def test_required_mode_refuses_the_read_with_503_and_no_position(
    store_url: str, tmp_path: Path
) -> None:
    async with _api(store_url, tmp_path, audit_required=True) as (api, audit):
        good = refuse_audit(audit, refusing_engine(store_url, tmp_path))
        response = await api.call("GET", "/v1/units/nearest?lon=4.351&lat=50.851", "dispatcher")
        body = await response.json(content_type=None)
        assert response.status == 503
        assert response.content_type == "application/problem+json"
        assert set(body) <= {"type", "title", "status", "detail", "instance"}, body
        assert "OUTPOST_AUDIT_REQUIRED" in body["detail"]
        assert "4.35" not in await response.text() and "u1" not in await response.text()
        detail = await api.call("GET", "/v1/units/u1", "viewer")
        assert detail.status == 503
        assert "50.85" not in await detail.text()
        stream = await api.call("GET", "/v1/stream", "viewer")  # refused before its headers left
        assert stream.status == 503 and stream.content_type == "application/problem+json"
        assert "50.85" not in await stream.text()

        refuse_audit(audit, good)  # the database is back: the refused attempts are shipped first
        await api.json("GET", "/v1/units/u1", role="viewer")
        got = [(e.action, (e.detail or {}).get("answer")) for e in _reads(api.engine)]
        refused = [("nearest", "refused"), ("read_unit", "refused"), ("stream", "refused")]
        assert got == [*refused, ("read_unit", None)]
        assert access.verify_audit(api.engine).intact
        assert not (tmp_path / "journal" / "audit.jsonl").exists()


async def test_by_default_the_journal_answers_and_is_shipped_once_the_database_is_back(
    store_url: str, tmp_path: Path
) -> None:
    async with _api(store_url, tmp_path) as (api, audit):
        good = refuse_audit(audit, refusing_engine(store_url, tmp_path))
        nearest = await api.json("GET", "/v1/units/nearest?lon=4.351&lat=50.851", role="dispatcher")
        assert [u["id"] for u in nearest["units"]] == ["u1"]
        await api.json("GET", "/v1/units/u1", role="viewer")
        journal = AuditJournal(tmp_path / "journal" / "audit.jsonl")
        assert [e.action for e in journal.read()] == ["nearest", "read_unit"]  # fsynced before the answers
        assert _reads(api.engine) == []

        refuse_audit(audit, good)
        await api.json("GET", "/v1/units/u1", role="viewer")
        entries = _reads(api.engine)
        assert [e.action for e in entries] == ["nearest", "read_unit", "read_unit"]
        assert all(e.detail is None or "answer" not in e.detail for e in entries)
        assert access.verify_audit(api.engine).intact
        assert not journal.path.exists()


async def test_neither_store_taking_records_refuses_requests_and_keeps_the_records(
    store_url: str, tmp_path: Path
) -> None:
    async with _api(store_url, tmp_path, audit_max_pending=1) as (api, audit):
        good = refuse_audit(audit, refusing_engine(store_url, tmp_path))
        (tmp_path / "a-file").write_text("")
        audit._journal = AuditJournal(tmp_path / "a-file" / "audit.jsonl")  # appends fail
        first = await api.call("GET", "/v1/units/u1", "viewer")
        assert first.status == 503 and "50.85" not in await first.text()
        assert audit.pending == 1  # kept, not dropped
        second = await api.call("GET", "/v1/units/nearest?lon=4.351&lat=50.851", "dispatcher")
        assert second.status == 503  # backpressure: refused before it ran, so nothing recorded
        assert "behind" in (await second.json(content_type=None))["detail"]

        refuse_audit(audit, good)
        with contextlib.suppress(Unavailable):  # the attempt under way when the database came back
            await audit.flush()
        await audit.flush()
        got = [(e.action, (e.detail or {}).get("answer")) for e in _reads(api.engine)]
        assert got == [("read_unit", "refused")]
        assert audit.pending == 0


def test_a_journal_shipped_twice_is_stored_once(store_engine: Engine, tmp_path: Path) -> None:
    journal = AuditJournal(tmp_path / "audit.jsonl")
    entries = [access.AuditEntry(AT, "token:1:a", "read_unit", f"u{i}", {"k": i}) for i in range(3)]
    journal.append(entries)
    read = journal.read()
    assert read == entries
    assert access.write_audit_once(store_engine, read)
    assert not access.write_audit_once(store_engine, read)  # a crash before the journal's removal
    assert [e.subject for e in access.read_audit(store_engine)] == ["u0", "u1", "u2"]
    assert access.verify_audit(store_engine).intact


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    journal = AuditJournal(tmp_path / "audit.jsonl")
    journal.append([access.AuditEntry(AT, "token:1:a", "read_unit", "u1")])
    with journal.path.open("ab") as f:
        f.write(b'["2024-05-30T17:00:00+00:00","token:1:a","read_u')  # killed mid-append: never answered
    assert [e.subject for e in AuditJournal(journal.path).read()] == ["u1"]


def test_outpost_audit_verify_names_records_still_in_the_journal(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = AuditJournal(tmp_path / "audit.jsonl")
    journal.append([access.AuditEntry(AT, "token:1:a", "read_unit", f"u{i}") for i in range(2)])
    monkeypatch.setenv("OUTPOST_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("OUTPOST_AUDIT_JOURNAL_PATH", str(journal.path))
    assert main(["audit", "verify"]) == 0
    assert f"2 more in the local journal {journal.path}" in capsys.readouterr().out
    assert len(journal.read()) == 2  # left for the server to ship
