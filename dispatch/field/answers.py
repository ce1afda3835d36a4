"""What a device is told about its status report, check-in or roll-call answer, and what a refused one
leaves behind: a count by kind and reason, and a dead letter beside ingest's (never an exception, never a
state change)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
from prometheus_client import Counter
from sqlalchemy import Engine

from dispatch.blocking import run_db
from schemas.fix import MAX_RAW_PAYLOAD_BYTES, RejectedMessage
from schemas.topics import device_topic
from store.fixes import FixWriter

log = logging.getLogger(__name__)

REFUSED = Counter(
    "outpost_field_refused",
    "Device status reports, check-ins and roll-call answers refused, by kind and reason.",
    ["kind", "reason"],
)
MALFORMED = "malformed_message"
DEVICE_UNBOUND = "device_unbound"
T = TypeVar("T")


@dataclass(frozen=True)
class DeviceAnswer:
    """What became of one device message: taken or not, why (every reason), and what it refers to. The
    HTTP twin answers `ok`, `detail` and `reasons`; MQTT devices hear `body` on their downlink."""

    ok: bool
    detail: str
    reasons: tuple[str, ...] = ()
    refs: dict[str, Any] = field(default_factory=dict)
    # What the message is about is held elsewhere (another desk, or one not yet resumed), which answers the
    # device: this one stays quiet.
    silent: bool = False

    def body(self) -> dict[str, Any]:
        """The downlink message's fields (besides its type)."""
        outcome = "taken" if self.ok else "refused"
        return {"outcome": outcome, "detail": self.detail, "reasons": list(self.reasons), **self.refs}


def decode(payload: bytes, tp: type[T]) -> T | None:
    """The payload as `tp`, or None when it is not one (ingest checked it; the relay path may not have)."""
    try:
        return msgspec.json.decode(payload.strip() or b"{}", type=tp)
    except msgspec.DecodeError:
        return None


class Refusals:
    """Counts and dead-letters refused device messages."""

    def __init__(self, engine: Engine) -> None:
        self._writer = FixWriter(engine)

    async def refuse(
        self,
        device_id: str,
        kind: str,
        payload: bytes,
        reasons: tuple[str, ...],
        detail: str,
        at_s: float,
        **refs: Any,
    ) -> DeviceAnswer:
        """Count and dead-letter a refused message; the answer for the device."""
        for reason in reasons:
            REFUSED.labels(kind, reason).inc()
        letter = RejectedMessage(
            received_at=datetime.fromtimestamp(at_s, UTC),
            source=device_topic(device_id, kind),
            reasons=reasons,
            raw=payload[:MAX_RAW_PAYLOAD_BYTES],
            device_id=device_id,
        )
        try:
            await run_db(self._writer.write_rejected, [letter])
        except Exception:  # the database is away: the count and the log still say it
            log.warning("refused %s of %s not dead-lettered", kind, device_id, exc_info=True)
        log.info(
            "device %s refused: %s", kind, detail, extra={"device_id": device_id, "reasons": list(reasons)}
        )
        return DeviceAnswer(False, detail, reasons, dict(refs))
