"""The ingest pipeline, as a straight line, one stage a module:

    receive → decode → validate → batch → write (or spool) → acknowledge;  validated fixes → live picture

    receive       `on_messages` (MQTT subscriber or embedded broker), `submit` (ingest.http)
    decode        ingest.decode           bytes → candidates; never raises
    validate      ingest.intake           candidates → fixes or dead letters in the batch (ingest.validate)
    batch         ingest.batch            flushed by size or age
    write         ingest.durable          database (ingest.write), else spool (ingest.drain), else hold
    acknowledge   ingest.acknowledge      only once durable; reading pauses while too many wait
    live picture  `OnAccepted`            fresh before they are even stored (the database is the truth)

The first stages run on the event loop, synchronously; `run` flushes batches by size or age. A batch is
made durable in the database (in a worker thread, so the loop stays free) or, when the database is
unavailable, in the local spool (fsynced); only then are its MQTT messages acknowledged and its HTTP
requests answered. A batch neither can take (database down, spool full) is held and retried: nothing is
acknowledged meanwhile, reading pauses once `mqtt_receive_maximum` messages wait (the broker's Receive
Maximum window too, where the broker honours it), and the backlog stays with the broker (bounded by its
max_queued_bytes) and with the devices. HTTP devices get 503 and retry.

Device replies to offers and alarms (MQTT topics, or HTTP through `forward_device_message`) are not fixes:
they go straight to the `on_device_message` port (ingest.device_messages). The collaborators are the
typed ports of ingest.ports. Exceptions are for infrastructure (StoreUnavailable) and, caught per message
as a last resort, bugs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ingest import metrics
from ingest.acknowledge import Acknowledger
from ingest.aio import first_of
from ingest.batch import Batch, Batcher, Parked
from ingest.decode import Decoded, decode_mqtt
from ingest.device_messages import DEVICE_MESSAGE_REASONS, DeviceMessages
from ingest.devices import DeviceDirectory
from ingest.drain import drain, drain_some
from ingest.durable import Durability
from ingest.duty import DutyRule
from ingest.intake import PROCESSING_FAILED, Intake
from ingest.ports import (
    DeviceOutcome,
    FixStore,
    FixValidator,
    Message,
    OnAccepted,
    OnDeviceMessage,
    Receiver,
    SpoolStore,
)
from ingest.ratelimit import RateLimit
from ingest.safeguards import UNSAFE_ACK_ON_RECEIPT, UNSAFE_MODES
from ingest.settings import IngestSettings
from ingest.validate import REASONS
from ingest.write import STORE_REFUSED, Stored, count_stored
from schemas.fix import Fix
from schemas.topics import is_device_message_topic

log = logging.getLogger(__name__)

ALL_REASONS = (*REASONS, PROCESSING_FAILED, STORE_REFUSED, *DEVICE_MESSAGE_REASONS)

_FINAL_FLUSH_S = 15.0


@dataclass(frozen=True)
class Submission:
    """What became of one HTTP message: fixes accepted, reasons of those rejected, and durability."""

    accepted: int
    rejected: list[tuple[str, ...]]
    durable: bool  # the accepted fixes are committed or spooled (False: overloaded or timed out)


class Pipeline:
    """Strings the stages together; see the module docstring. Everything but the stores runs on the loop."""

    def __init__(
        self,
        settings: IngestSettings,
        *,
        writer: FixStore,
        directory: DeviceDirectory,
        validator: FixValidator,
        spool: SpoolStore | None,
        on_accepted: OnAccepted,
        on_device_message: OnDeviceMessage | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if settings.unsafe_disable_safeguard not in UNSAFE_MODES:
            raise ValueError(f"unsafe_disable_safeguard={settings.unsafe_disable_safeguard!r}: unknown")
        self._settings = settings
        self.directory = directory
        self._validator = validator
        self._on_accepted = on_accepted
        self._clock = clock
        self._unsafe = settings.unsafe_disable_safeguard
        log_budget = RateLimit(settings.rejected_log_per_s)
        self._batcher = Batcher(settings.batch_max_fixes, settings.batch_max_age_ms / 1000, time.monotonic)
        self._intake = Intake(directory, validator, log_budget, DutyRule(settings.off_duty_fixes))
        self._durable = Durability(writer, spool, unsafe=self._unsafe, log_budget=log_budget)
        self._acks = Acknowledger(settings.mqtt_receive_maximum)
        self._device_messages = DeviceMessages(directory, on_device_message)
        metrics.prepare(ALL_REASONS)

    def attach(self, receiver: Receiver) -> None:
        """Connect the receiver (MQTT subscriber, embedded broker): acknowledging, pausing, resuming."""
        self._acks.attach(receiver)

    # ------------------------------------------------------------------------------------------ MQTT
    def on_messages(self, messages: list[Message], received_s: float) -> None:
        """Decode, validate and batch one chunk of MQTT messages (called by the receiver, on the loop)."""
        batch = self._batcher.current
        received_at = datetime.fromtimestamp(received_s, UTC)
        accepted: list[Fix] = []
        tokens = [token for _topic, _payload, token in messages if token >= 0]
        intake, limit = self._intake, self._settings.max_payload_bytes
        for topic, payload, token in messages:
            try:
                if is_device_message_topic(topic):
                    refused = self._device_messages.from_mqtt(topic, payload)
                    if refused is not None:
                        intake.dead_letter(batch, topic, payload, (refused[1],), refused[0], received_at)
                    continue
                decoded = decode_mqtt(topic, payload, max_payload_bytes=limit)
                if intake.should_park(decoded):
                    batch.parked.append(Parked(topic, payload, token, received_s, "mqtt"))
                    continue
                intake.examine(batch, topic, payload, decoded, received_at, accepted)
            except Exception:
                intake.failed(batch, topic, payload, received_at)
        batch.received["mqtt"] = batch.received.get("mqtt", 0) + len(messages)
        if self._unsafe == UNSAFE_ACK_ON_RECEIPT:
            self._acks.ack_now(tokens)  # the negative control: what an ack-on-receipt client (aiomqtt) does
        else:
            self._acks.hold(batch, tokens)
        self._batcher.touch()
        self._publish(accepted)
        self._acks.pause_if_full()

    @property
    def forwards_device_messages(self) -> bool:
        """Whether replies and alarms reach a dispatcher (the `ingest` role has none attached)."""
        return self._device_messages.attached

    def forward_device_message(
        self, device_id: str, kind: str, payload: bytes
    ) -> Awaitable[DeviceOutcome] | None:
        """Hand a device's reply or alarm (`kind` in DEVICE_MESSAGE_KINDS) to dispatch, as MQTT does; the
        running task of its outcome, when the handler gives one. Raises what the handler raises."""
        return self._device_messages.forward(device_id, kind, payload)

    def refuse_device_message(
        self, source: str, payload: bytes, reason: str, device_id: str, received_s: float
    ) -> None:
        """Dead-letter a device message refused before dispatch saw it (HTTP; MQTT does this itself)."""
        batch = self._batcher.current
        received_at = datetime.fromtimestamp(received_s, UTC)
        self._intake.dead_letter(batch, source, payload, (reason,), device_id, received_at)
        self._batcher.touch()

    def _publish(self, accepted: list[Fix]) -> None:
        """Hand validated fixes to the live picture: fresh before they are even stored."""
        if not accepted:
            return
        try:
            self._on_accepted(accepted)
        except Exception:
            log.exception("on_accepted failed; the index is rebuilt from the database on restart")

    # ------------------------------------------------------------------------------------------ HTTP
    async def submit(self, source: str, payload: bytes, decoded: Decoded, received_s: float) -> Submission:
        """Validate and batch one HTTP message; wait until its fixes are durable (or time out)."""
        if self._overloaded():
            return Submission(0, [], durable=False)
        if self._intake.should_park(decoded):
            await self.directory.load()  # rate-limited by should_park; unknown after it: rejected
        received_at = datetime.fromtimestamp(received_s, UTC)
        batch = self._batcher.current
        accepted: list[Fix] = []
        first_fix, first_rejected = len(batch.fixes), len(batch.rejected)
        self._intake.examine(batch, source, payload, decoded, received_at, accepted)
        rejected = [r.reasons for r in batch.rejected[first_rejected:]]
        kept = len(batch.fixes) - first_fix  # also those stored restricted, which the picture never sees
        batch.received["http"] = batch.received.get("http", 0) + 1
        done: asyncio.Future[bool] | None = None
        if kept:
            done = asyncio.get_running_loop().create_future()
            batch.waiters.append(done)
        self._batcher.touch()
        self._publish(accepted)
        if done is None:
            return Submission(0, rejected, durable=True)
        try:
            durable = await asyncio.wait_for(asyncio.shield(done), self._settings.http_durable_timeout_s)
        except TimeoutError:
            durable = False
        return Submission(kept, rejected, durable)

    def _overloaded(self) -> bool:
        # HTTP has no receive window: refuse (503, the device retries) rather than grow without bound.
        limit = 4 * max(self._settings.batch_max_fixes, self._acks.max_pending)
        return self._batcher.current.items >= limit

    # ------------------------------------------------------------------------------------------ flushing
    async def run(self, stop: asyncio.Event) -> None:
        """Flush batches as they fall due, drain the spool, keep the directory fresh; until `stop`."""
        background = [asyncio.create_task(self._drain(stop)), asyncio.create_task(self.directory.run(stop))]
        try:
            while not stop.is_set():
                await first_of(self._batcher.wait_due(), stop.wait())
                if stop.is_set():
                    break
                await self._flush(self._batcher.take())
            # Last batch: made durable and acknowledged if the stores allow, within bounds; else the
            # broker redelivers it on the next start.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush(self._batcher.take()), _FINAL_FLUSH_S)
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self.settle()

    async def _flush(self, batch: Batch) -> None:
        if batch.parked:
            await self._resolve_parked(batch)
        if batch.is_empty():
            return
        started_s = time.monotonic()
        durable, stored = await self._make_durable(batch)
        elapsed_s = time.monotonic() - started_s
        self._acks.acknowledge(batch, durable)
        self._record(batch, stored, elapsed_s)

    async def _resolve_parked(self, batch: Batch) -> None:
        """Messages of unknown devices: reload the directory once, then validate them (unknown: rejected)."""
        if self.directory.miss_refresh_due():
            await self.directory.load()
        accepted: list[Fix] = []
        intake, limit = self._intake, self._settings.max_payload_bytes
        for p in batch.parked:
            received_at = datetime.fromtimestamp(p.received_s, UTC)
            decoded = decode_mqtt(p.source, p.payload, max_payload_bytes=limit)
            try:
                intake.examine(batch, p.source, p.payload, decoded, received_at, accepted)
            except Exception:
                intake.failed(batch, p.source, p.payload, received_at)
        batch.parked.clear()
        self._publish(accepted)

    def _record(self, batch: Batch, stored: Stored | None, elapsed_s: float) -> None:
        metrics.add_counts(metrics.MESSAGES_RECEIVED, batch.received)
        metrics.add_counts(metrics.REJECTED, batch.reasons)
        metrics.add_counts(metrics.IGNORED, batch.ignored)
        metrics.BATCH_SIZE.observe(batch.items)
        metrics.FLUSH_SECONDS.observe(elapsed_s)
        if stored is not None:
            count_stored(batch.fixes, stored, self._clock())

    # The durability and drain stages by the names the fault-injection tests reach them with.
    async def _make_durable(self, batch: Batch) -> tuple[bool, Stored | None]:
        return await self._durable.make_durable(batch)

    async def _append_to_spool(self, batch: Batch) -> bool:
        return await self._durable.append_to_spool(batch)

    def _database_up(self) -> None:
        self._durable.database_up()

    async def _drain(self, stop: asyncio.Event) -> None:
        await drain(self._durable, stop, self._clock)

    async def _drain_some(self, spool: SpoolStore) -> int | None:
        return await drain_some(self._durable, spool, self._clock)

    # ------------------------------------------------------------------------------------------ lifecycle
    async def settle(self) -> None:
        """Wait for store and spool work still running in worker threads (their outcome is not needed:
        a batch not acknowledged is redelivered, and writes are idempotent)."""
        await self._durable.settle()

    def close(self) -> None:
        """Release the spool (its undrained records stay on disk for the next start). Call `settle` (or
        let `run` end) first: a worker thread may still be writing to it."""
        if self._durable.spool is not None:
            self._durable.spool.close()

    @property
    def settings(self) -> IngestSettings:
        """The settings this pipeline runs with."""
        return self._settings

    def seed(self, fixes: Sequence[Fix]) -> None:
        """Restore validation state (each device's latest fix) after a restart."""
        self._validator.seed(fixes)

    @property
    def spooling(self) -> bool:
        """Whether new batches currently go to the spool (the database refused the last write)."""
        return self._durable.spooling
