"""The audit's local journal: records the database could not take, appended to one file and fsynced before
their requests are answered, and shipped to the database once it is back (`dispatch.audit`).

One JSON array a line: `[at, actor, action, subject, detail]`. A line cut short by a kill during its
append is skipped when read (its requests were never answered: the answer waits for the fsync). Blocking
I/O: the audit log calls it from a worker thread, and only its one committer task does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import msgspec
from prometheus_client import Counter

from store.access import AuditEntry
from store.times import as_utc

log = logging.getLogger(__name__)

JOURNAL_TORN = Counter("outpost_audit_journal_torn_total", "Audit journal lines unreadable (cut by a crash)")

_Line = tuple[str, str, str, str, dict[str, object] | None]
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(_Line).decode


class AuditJournal:
    """An append-only file of audit entries awaiting the database."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._holds = path.exists() and path.stat().st_size > 0

    @property
    def holds_records(self) -> bool:
        """Whether records wait here to be shipped (known without touching the disk)."""
        return self._holds

    def append(self, entries: Sequence[AuditEntry]) -> None:
        """Append `entries` and fsync them (and, for a new file, its directory entry); raises OSError."""
        lines = b"".join(
            _encode([as_utc(e.at).isoformat(), e.actor, e.action, e.subject, e.detail]) + b"\n"
            for e in entries
        )
        created = not self.path.exists()
        if created:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as f:
            if not created and f.tell() > 0 and _last_byte(self.path) != b"\n":
                lines = b"\n" + lines  # a line torn by a kill stays alone: the next one is not glued to it
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())
        if created:
            _fsync_dir(self.path.parent)
        self._holds = True

    def read(self) -> list[AuditEntry]:
        """Every whole entry in the journal, in the order appended."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        entries = []
        for number, line in enumerate(data.split(b"\n"), start=1):
            if not line:
                continue
            try:
                at, actor, action, subject, detail = _decode(line)
                entries.append(AuditEntry(datetime.fromisoformat(at), actor, action, subject, detail))
            except (msgspec.DecodeError, ValueError):
                JOURNAL_TORN.inc()
                log.error("audit journal %s: line %d unreadable, skipped (cut short?)", self.path, number)
        return entries

    def clear(self) -> None:
        """Remove the journal once its records are in the database."""
        self.path.unlink(missing_ok=True)
        _fsync_dir(self.path.parent)
        self._holds = False


def _last_byte(path: Path) -> bytes:
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
