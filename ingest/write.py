"""The write stage: one batch into the database, in a worker thread. One COPY for the fixes, then the dead
letters; what the database refuses for its content is isolated and dead-lettered, never blocking the rest.

Only `StoreUnavailable` leaves `store_batch`: the caller (ingest.durable) spools or holds the batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple

import msgspec

from ingest import metrics
from ingest.ports import FixStore
from schemas.fix import Fix, RejectedMessage
from store.errors import is_content_error, is_unavailable
from store.fixes import StoreUnavailable

log = logging.getLogger(__name__)

# A fix the database refused for its content (a validation gap): dead-lettered as JSON, never blocking.
STORE_REFUSED = "store_refused"
_LAG_SAMPLE = 64


class Stored(NamedTuple):
    """What the database did with a batch of fixes."""

    new: int  # stored now (the rest were duplicates, or refused)
    refused: int  # refused for their content: dead-lettered as store_refused


def store_batch(writer: FixStore, fixes: list[Fix], rejected: list[RejectedMessage]) -> Stored:
    """In a worker thread: one COPY for the fixes, then the dead letters.

    StoreUnavailable propagates (the caller spools). A batch the database refuses for its content
    (SQLSTATE class 22/23: a gap in validation) is split until the offending fixes are found; they
    become dead letters (`store_refused`), the rest is stored: one bad fix never blocks the stream.
    Any other failure (a server in the wrong state, a bug) raises StoreUnavailable too: the batch is
    kept, never dead-lettered for a fault that is not its own.
    """
    try:
        stored, refused = writer.write(fixes), []
    except Exception as exc:
        _raise_unless_content(exc, "fixes")
        log.exception("the database refused a batch for its content; isolating the offending fixes")
        half = len(fixes) // 2
        stored_a, refused_a = _write_apart(writer, fixes[:half])
        stored_b, refused_b = _write_apart(writer, fixes[half:])
        stored, refused = stored_a + stored_b, refused_a + refused_b
        metrics.REJECTED.labels(STORE_REFUSED).inc(len(refused))
    _write_dead_letters(writer, [*rejected, *refused])
    return Stored(stored, len(refused))


def count_stored(fixes: Sequence[Fix], stored: Stored, now_s: float) -> None:
    """The metrics of a stored batch: new rows, duplicates, and the lag of a sample of its fixes."""
    metrics.FIXES_STORED.inc(stored.new)
    metrics.DUPLICATES_IGNORED.inc(len(fixes) - stored.new - stored.refused)
    if fixes:
        sample = fixes[:: max(1, len(fixes) // _LAG_SAMPLE)]
        metrics.observe_lag(
            [f.received_at.timestamp() for f in sample], [f.ts.timestamp() for f in sample], now_s
        )


def _write_apart(writer: FixStore, fixes: list[Fix]) -> tuple[int, list[RejectedMessage]]:
    if not fixes:
        return 0, []
    try:
        return writer.write(fixes), []
    except Exception as exc:
        _raise_unless_content(exc, "fixes")
        if len(fixes) > 1:
            half = len(fixes) // 2
            stored_a, refused_a = _write_apart(writer, fixes[:half])
            stored_b, refused_b = _write_apart(writer, fixes[half:])
            return stored_a + stored_b, refused_a + refused_b
    [fix] = fixes
    log.error(
        "fix refused by the database; dead-lettered", extra={"device_id": fix.device_id, "fix": str(fix)}
    )
    raw = msgspec.json.encode(fix)
    return 0, [
        RejectedMessage(
            received_at=fix.received_at,
            source="store",
            reasons=(STORE_REFUSED,),
            raw=raw,
            device_id=fix.device_id,
        )
    ]


def _write_dead_letters(writer: FixStore, rejected: list[RejectedMessage]) -> None:
    """Store the dead letters, or raise StoreUnavailable: a batch whose dead letters are not stored is
    not durable (it is spooled, or held unacknowledged), whatever the reason."""
    try:
        writer.write_rejected(rejected)
    except Exception as exc:
        _raise_unless_content(exc, "dead letters")
        log.exception("the database refused dead letters for their content; writing them one by one")
        for message in rejected:
            try:
                writer.write_rejected([message])
            except Exception as one_exc:
                _raise_unless_content(one_exc, "a dead letter")
                # Its text fields are what the database can refuse (NUL, length); the raw payload is kept.
                log.error(
                    "dead letter refused; storing it with escaped text",
                    extra={"dead_letter": str(message)},
                )
                try:
                    writer.write_rejected([_plain(message)])
                except Exception as plain_exc:
                    raise StoreUnavailable(f"dead letter refused: {plain_exc}") from plain_exc


def _raise_unless_content(exc: Exception, what: str) -> None:
    """Re-raise `exc` as StoreUnavailable unless the database refused the rows for their content."""
    if isinstance(exc, StoreUnavailable):
        raise exc
    if is_content_error(exc):
        return
    if not is_unavailable(exc):
        log.exception("unexpected failure storing %s; keeping them (spooled or held) to retry", what)
    raise StoreUnavailable(f"{what} not stored: {exc}") from exc


def _plain(message: RejectedMessage) -> RejectedMessage:
    """`message` with text any database takes: ASCII, no NUL, device id within its column (raw unchanged)."""
    device_id = None if message.device_id is None else _printable(message.device_id)[:128]
    return RejectedMessage(
        received_at=message.received_at,
        source=_printable(message.source),
        reasons=tuple(_printable(r) for r in message.reasons),
        raw=message.raw,
        device_id=device_id,
    )


def _printable(text: str) -> str:
    return text.encode("ascii", "backslashreplace").decode("ascii").replace("\x00", "\\x00")
