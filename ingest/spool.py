"""The durable local spool: where a batch goes when the database cannot take it, so it can still be acked.

Records are appended to segment files `spool-<n>.log` and fsynced before `append` returns; only then may
the messages in them be acknowledged. A record is

    magic b"OSP1" | u32 payload length | u32 CRC-32 of the payload | u32 fix count | payload (msgpack)

so a record torn by a crash (the last one, never acknowledged) is recognised by its length or checksum
and cut off when the spool is opened. The drainer reads records in order (`peek`) and, once they are
committed in the database, moves the cursor past them (`commit`, persisted in `cursor`); fully drained
segments are deleted. Replaying a record twice (crash between commit and cursor) is harmless: fix writes
are idempotent on (device_id, ts).

When the undrained records reach `max_bytes`, `append` raises `SpoolFull`: the pipeline then stops
acknowledging, so the backlog stays with the broker (and the devices) instead of growing here.

Thread-safety: `append` runs in one worker thread while `peek`/`commit` run in another; a lock guards the
segment bookkeeping, and readers never look past the last fully written record.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import struct
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from schemas.fix import Fix, RejectedMessage

log = logging.getLogger(__name__)

_MAGIC = b"OSP1"
_HEADER = struct.Struct("<4sIII")  # magic, payload length, crc32, fix count
# A record larger than this is corrupt, not a batch (a batch of 100k fixes is ~15 MB).
_MAX_RECORD_BYTES = 256 << 20
SEGMENT_BYTES = 64 << 20  # a new segment file is started once the current one passes this


class SpoolFull(Exception):  # noqa: N818 (reads as a state, like StoreUnavailable)
    """The spool holds `max_bytes` of undrained records: stop acknowledging until it drains."""


class SpoolEntry(msgspec.Struct, array_like=True):
    """One spooled batch: its fixes and its dead letters."""

    fixes: list[Fix]
    rejected: list[RejectedMessage]


@dataclass(frozen=True)
class SpoolRecord:
    """One record read back for draining; `commit(record.end)` once it is in the database."""

    entry: SpoolEntry
    end: tuple[int, int]  # (segment number, offset just past this record)


@dataclass
class _Segment:
    number: int
    path: Path
    size: int  # bytes of complete records
    fixes: int  # fixes in its undrained records (whole segment minus drained part)


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(SpoolEntry)


class Spool:
    """Append-only, checksummed, fsynced batches on local disk, drained in order. See the module doc."""

    def __init__(self, directory: Path | str, max_bytes: int, *, segment_bytes: int = SEGMENT_BYTES) -> None:
        self._dir = Path(directory)
        self._max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._dir.mkdir(parents=True, exist_ok=True)
        self._dir_lock: int | None = _lock_directory(self._dir)
        self._segments: list[_Segment] = []
        self._cursor = (0, 0)  # (segment number, offset) of the next record to drain
        self._append_file: int | None = None  # fd of the last segment, opened for appending
        self._recover()

    # ------------------------------------------------------------------------------------------ state
    @property
    def depth_bytes(self) -> int:
        """Bytes of undrained records."""
        with self._lock:
            return self._depth_bytes_locked()

    @property
    def depth_fixes(self) -> int:
        """Fixes in undrained records."""
        with self._lock:
            return sum(s.fixes for s in self._segments)

    def is_empty(self) -> bool:
        """Whether every record has been drained."""
        return self.depth_bytes == 0

    def _depth_bytes_locked(self) -> int:
        total = sum(s.size for s in self._segments)
        if self._segments and self._segments[0].number == self._cursor[0]:
            total -= self._cursor[1]
        return total

    # ------------------------------------------------------------------------------------------ append
    def append(self, fixes: Sequence[Fix], rejected: Sequence[RejectedMessage]) -> None:
        """Write one batch and fsync it. Blocking; raises SpoolFull, or OSError if the disk fails."""
        payload = _encoder.encode(SpoolEntry(list(fixes), list(rejected)))
        record = _HEADER.pack(_MAGIC, len(payload), zlib.crc32(payload), len(fixes)) + payload
        with self._lock:
            if self._depth_bytes_locked() + len(record) > self._max_bytes:
                raise SpoolFull(f"spool {self._dir} holds {self._depth_bytes_locked()} bytes")
            segment = self._writable_segment_locked()
            fd = self._append_file
            assert fd is not None
        # The write and fsync run outside the lock so the drainer is not held up by the disk; only this
        # thread appends, and readers stop at `segment.size`, which moves only after the fsync.
        try:
            _write_all(fd, record, segment.size)
            os.fdatasync(fd)
        except OSError as exc:
            # Whatever reached the file past `size` is garbage now; the next append overwrites it. The
            # caller says so, rate-limited (a full disk fails every retry).
            log.debug("spool write failed", extra={"segment": str(segment.path), "error": str(exc)})
            raise
        with self._lock:
            segment.size += len(record)
            segment.fixes += len(fixes)

    def _writable_segment_locked(self) -> _Segment:
        last = self._segments[-1] if self._segments else None
        if last is not None and self._append_file is not None and last.size < self._segment_bytes:
            return last
        number = last.number + 1 if last is not None else 1
        if self._append_file is not None:
            os.close(self._append_file)
        segment = _Segment(number, self._dir / f"spool-{number:08d}.log", 0, 0)
        self._append_file = os.open(segment.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        _fsync_dir(self._dir)  # the new file's directory entry must survive a crash too
        self._segments.append(segment)
        if len(self._segments) == 1:
            self._cursor = (number, 0)
        return segment

    # ------------------------------------------------------------------------------------------ drain
    def peek(self, max_fixes: int = 20000) -> list[SpoolRecord]:
        """The oldest undrained records, in order, up to about `max_fixes` fixes (at least one record)."""
        out: list[SpoolRecord] = []
        with self._lock:
            segments = [(s.number, s.path, s.size) for s in self._segments]
            number, offset = self._cursor
        budget = max_fixes
        for seg_number, path, size in segments:
            if seg_number < number:
                continue
            start = offset if seg_number == number else 0
            for entry, end in _read_records(path, start, size, budget):
                out.append(SpoolRecord(entry, (seg_number, end)))
                budget -= max(1, len(entry.fixes) + len(entry.rejected))
            if budget <= 0:
                break
        return out

    def commit(self, position: tuple[int, int]) -> None:
        """Everything up to `position` is in the database: move the cursor and delete drained segments."""
        with self._lock:
            number, offset = position
            drained: list[_Segment] = []
            for segment in self._segments:
                if segment.number < number or (
                    segment.number == number and offset >= segment.size and segment is not self._segments[-1]
                ):
                    drained.append(segment)
            for segment in drained:
                self._segments.remove(segment)
            if self._segments:
                first = self._segments[0]
                if first.number == number:
                    self._cursor = (number, offset)
                    first.fixes = _count_fixes(first.path, offset, first.size)
                else:
                    self._cursor = (first.number, 0)
            self._save_cursor_locked()
        for segment in drained:
            with contextlib.suppress(FileNotFoundError):
                segment.path.unlink()

    def close(self) -> None:
        """Close the append file (the spool's content stays on disk for the next start)."""
        with self._lock:
            if self._append_file is not None:
                os.close(self._append_file)
                self._append_file = None
            if self._dir_lock is not None:
                os.close(self._dir_lock)  # releases the flock
                self._dir_lock = None

    # ------------------------------------------------------------------------------------------ recovery
    def _save_cursor_locked(self) -> None:
        tmp = self._dir / "cursor.tmp"
        data = json.dumps({"segment": self._cursor[0], "offset": self._cursor[1]}).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fdatasync(fd)
        finally:
            os.close(fd)
        tmp.replace(self._dir / "cursor")

    def _load_cursor(self) -> tuple[int, int]:
        try:
            data = json.loads((self._dir / "cursor").read_text(encoding="utf-8"))
            return int(data["segment"]), int(data["offset"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return (0, 0)

    def _recover(self) -> None:
        """Scan the segments left by a previous run; cut off a torn or corrupt tail."""
        number, offset = self._load_cursor()
        paths = sorted(self._dir.glob("spool-*.log"))
        for path in paths:
            seg_number = int(path.stem.split("-")[1])
            if seg_number < number:
                path.unlink()  # drained before the crash, not yet deleted
                continue
            start = offset if seg_number == number else 0
            good_end, fixes = _scan(path, start)
            size = path.stat().st_size
            if good_end < size:
                log.warning(
                    "spool: cut off a torn or corrupt record tail",
                    extra={"segment": str(path), "bytes_dropped": size - good_end},
                )
                os.truncate(path, good_end)
            if good_end <= start:
                path.unlink()  # nothing undrained left in it
                continue
            self._segments.append(_Segment(seg_number, path, good_end, fixes))
        if self._segments:
            first = self._segments[0].number
            self._cursor = (first, offset if first == number else 0)
            log.info(
                "spool holds undrained batches from a previous run",
                extra={"bytes": self._depth_bytes_locked(), "fixes": sum(s.fixes for s in self._segments)},
            )
        else:
            self._cursor = (0, 0)


def _read_records(path: Path, start: int, end: int, budget: int) -> list[tuple[SpoolEntry, int]]:
    """Records of `path` from `start` (never past `end`, the last complete record), until `budget` items
    are read; each with the offset just past it."""
    out: list[tuple[SpoolEntry, int]] = []
    pos = start
    with path.open("rb") as f:
        f.seek(start)
        while pos + _HEADER.size <= end and budget > 0:
            _magic, length, _crc, _n = _HEADER.unpack(f.read(_HEADER.size))
            entry = _decoder.decode(f.read(length))
            pos += _HEADER.size + length
            out.append((entry, pos))
            budget -= max(1, len(entry.fixes) + len(entry.rejected))
    return out


def _scan(path: Path, start: int) -> tuple[int, int]:
    """(offset just past the last valid record, fixes in valid records) from `start`."""
    pos, fixes = start, 0
    with path.open("rb") as f:
        f.seek(start)
        while True:
            header = f.read(_HEADER.size)
            if len(header) < _HEADER.size:
                return pos, fixes
            magic, length, crc, n = _HEADER.unpack(header)
            if magic != _MAGIC or length > _MAX_RECORD_BYTES:
                return pos, fixes
            payload = f.read(length)
            if len(payload) < length or zlib.crc32(payload) != crc:
                return pos, fixes
            pos += _HEADER.size + length
            fixes += n


def _count_fixes(path: Path, start: int, end: int) -> int:
    """Fixes in the records of `path` between start and end (headers only)."""
    fixes, pos = 0, start
    with path.open("rb") as f:
        while pos + _HEADER.size <= end:
            f.seek(pos)
            _magic, length, _crc, n = _HEADER.unpack(f.read(_HEADER.size))
            fixes += n
            pos += _HEADER.size + length
    return fixes


def _lock_directory(directory: Path) -> int | None:
    """Hold an exclusive lock on the spool folder: two workers sharing one spool would replay each other's
    batches out of order and fight over the cursor. The OS drops the lock when the process dies."""
    fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RuntimeError(
            f"spool folder {directory} is in use by another ingest worker: give each worker "
            "its own OUTPOST_SPOOL_DIR"
        ) from None
    return fd


def _write_all(fd: int, data: bytes, offset: int) -> None:
    """Write all of `data` at `offset`, or raise. A write that fills the disk returns short rather than
    failing (only the next one raises ENOSPC): taking the short count as done would make a torn record
    look whole, acknowledge a batch that is not on disk, and stop the drainer at it."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        if written <= 0:
            raise OSError(errno.ENOSPC, "no space left on device", str(fd))
        view, offset = view[written:], offset + written


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
