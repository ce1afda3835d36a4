"""The audit journal keeps every whole record, also the first one appended after a line torn by a kill."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from dispatch.audit_journal import AuditJournal
from store.access import AuditEntry

AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_a_record_appended_after_a_torn_line_is_kept(tmp_path: Path) -> None:
    journal = AuditJournal(tmp_path / "audit.jsonl")
    first = AuditEntry(AT, "token:1:a", "read_unit", "unit:u1", None)
    journal.append([first])
    with journal.path.open("ab") as f:
        f.write(b'["2026-05-01T12:00:01+00:00","token:1:a","read_')  # a kill in the middle of an append
    after = AuditEntry(AT, "token:1:a", "nearest", "point", {"k": 5})
    AuditJournal(journal.path).append([after])  # the next start, the database still down
    assert AuditJournal(journal.path).read() == [first, after]
