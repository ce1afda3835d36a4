"""The validate stage, into the open batch: each decoded candidate is checked against its device and the
rules, and becomes a fix to store (and to show) or a dead letter with every reason that fired.

Data problems are values: every rejected fix becomes a dead letter with its reasons, stored and acked
like a fix. A message of a device the directory does not know yet is parked until the directory has been
reloaded (at flush), when the directory may be reloaded at all.
"""

from __future__ import annotations

import logging
from datetime import datetime

from ingest.batch import Batch
from ingest.decode import Decoded
from ingest.duty import DROPPED, DutyRule
from ingest.ports import FixValidator, Registry
from ingest.ratelimit import RateLimit
from schemas.fix import MAX_RAW_PAYLOAD_BYTES, Fix, RejectedMessage

log = logging.getLogger(__name__)

# A bug caught by the per-message safety net: the message is dead-lettered (raw payload kept), never lost.
PROCESSING_FAILED = "processing_failed"


class Intake:
    """Candidates → fixes or dead letters in a batch. Runs on the loop, synchronously."""

    def __init__(
        self, registry: Registry, validator: FixValidator, log_budget: RateLimit, duty: DutyRule
    ) -> None:
        self._registry = registry
        self._validator = validator
        self._log_budget = log_budget
        self._duty = duty

    def should_park(self, decoded: Decoded) -> bool:
        """An unknown device, and the directory may be reloaded: decide after the reload (at flush)."""
        registry = self._registry
        if not decoded.candidates or registry.register_unknown:
            return False
        return registry.get(decoded.candidates[0].device_id) is None and registry.miss_refresh_due()

    def examine(
        self,
        batch: Batch,
        source: str,
        payload: bytes,
        decoded: Decoded,
        received_at: datetime,
        accepted: list[Fix],
    ) -> None:
        """Validate the candidates of one decoded message into `batch`: fixes, dead letters, tallies; the
        fixes also go to `accepted` (for the live picture), except those taken off duty (ingest.duty)."""
        if decoded.ignored is not None:
            batch.count_ignored(decoded.ignored)
        for reasons, device_id in decoded.rejects:
            self.dead_letter(batch, source, payload, reasons, device_id, received_at)
        registry, validator = self._registry, self._validator
        for candidate in decoded.candidates:
            device = registry.get(candidate.device_id)
            if device is None and registry.register_unknown:
                device = registry.register(candidate.device_id)
            result = validator.check(candidate, device, received_at)
            if isinstance(result, Fix):
                if device is not None and device.off_duty:
                    self._off_duty(batch, result)
                    continue
                batch.fixes.append(result)
                accepted.append(result)
            else:
                self.dead_letter(batch, source, payload, result.reasons, result.device_id, received_at)

    def _off_duty(self, batch: Batch, fix: Fix) -> None:
        """Stored restricted, or dropped and counted; never handed to the live picture."""
        kept = self._duty.apply(fix)
        if kept is None:
            batch.count_ignored(DROPPED)
        else:
            batch.fixes.append(kept)

    def dead_letter(
        self,
        batch: Batch,
        source: str,
        payload: bytes,
        reasons: tuple[str, ...],
        device_id: str | None,
        received_at: datetime,
    ) -> None:
        """Queue a dead letter of `payload` (cut to what is kept) with its reasons; logged, rate-limited."""
        batch.add_rejected(
            RejectedMessage(
                received_at=received_at,
                source=source,
                reasons=reasons,
                raw=payload[:MAX_RAW_PAYLOAD_BYTES],
                device_id=device_id,
            )
        )
        if self._log_budget.allow():
            log.info(
                "fix rejected",
                extra={
                    "source": source,
                    "reasons": list(reasons),
                    "device_id": device_id,
                    "raw": payload[:200].decode("utf-8", "replace"),
                },
            )

    def failed(self, batch: Batch, source: str, payload: bytes, received_at: datetime) -> None:
        """The safety net: a bug while examining a message; it is dead-lettered, never lost."""
        log.exception("ingest bug while processing a message; dead-lettered", extra={"topic": source})
        self.dead_letter(batch, source, payload, (PROCESSING_FAILED,), None, received_at)
