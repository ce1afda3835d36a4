"""The ingest pipeline, as a straight line:

    bytes → decode → validate → on_accepted (live index) → batch → store (one COPY) or spool → acknowledge

`on_messages` (MQTT) and `submit` (HTTP) run the first four stages on the event loop, synchronously; `run`
flushes batches by size or age. A batch is made durable in the database (in a worker thread, so the loop
stays free) or, when the database is unavailable, in the local spool (fsynced); only then are its MQTT
messages acknowledged and its HTTP requests answered. A batch neither can take (database down, spool full)
is held and retried: nothing is acknowledged meanwhile, reading pauses once `mqtt_receive_maximum`
messages wait (the broker's Receive Maximum window too, where the broker honours it), and the backlog stays
with the broker (bounded by its max_queued_bytes) and with the devices. HTTP devices get 503 and retry.

The spool drains into the database in order once it is back. While it is down, batches go straight to the
spool, and the database is tried again after a growing pause (1 s to 30 s) or as soon as the drainer gets
a write through; live batches and the drain then proceed side by side. Writes are idempotent on
(device_id, ts), so a replayed record or a redelivered message is a counted duplicate, never a second row.

Device replies to offers and alarms (MQTT topics, or HTTP through `forward_device_message`) are not fixes:
they skip decoding, validation and storage and go straight to the `on_device_message` handler (dispatch's).

Data problems are values: every rejected fix becomes a dead letter with its reasons, stored and acked like
a fix. Exceptions are for infrastructure (StoreUnavailable) and, caught per message as a last resort, bugs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, ParamSpec, Protocol, TypeVar

import msgspec

from ingest import metrics
from ingest.batch import Batch, Batcher, Parked
from ingest.decode import Decoded, decode_mqtt
from ingest.devices import DeviceDirectory
from ingest.settings import IngestSettings
from ingest.spool import Spool, SpoolFull
from ingest.validate import REASONS, Validator
from schemas.fix import MAX_RAW_PAYLOAD_BYTES, Fix, RejectedMessage
from store.errors import is_content_error, is_unavailable
from store.fixes import FixWriter, StoreUnavailable

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

Message = tuple[str, bytes, int]  # topic, payload, ack token (negative: nothing to ack)
OnAccepted = Callable[[Sequence[Fix]], None]


class DeviceOutcome(Protocol):
    """What dispatch made of a device's reply or alarm: taken or not, and why (told to HTTP devices)."""

    @property
    def ok(self) -> bool: ...

    @property
    def detail(self) -> str: ...


# (device id, kind "reply" | "alarm", payload). The handler must not block the loop: it starts its own work
# and may return it as a running task, whose outcome HTTP devices are told. MQTT publishes get no answer,
# so the MQTT path drops the task (a task, not a bare coroutine, so dropping it never drops the work).
OnDeviceMessage = Callable[[str, str, bytes], Awaitable[DeviceOutcome] | None]

# A bug caught by the per-message safety net: the message is dead-lettered (raw payload kept), never lost.
PROCESSING_FAILED = "processing_failed"
# A fix the database refused for its content (a validation gap): dead-lettered as JSON, never blocking.
STORE_REFUSED = "store_refused"
ALL_REASONS = (*REASONS, PROCESSING_FAILED, STORE_REFUSED)

_DEVICE_PREFIX = "outpost/v1/devices/"
DEVICE_MESSAGE_KINDS = ("reply", "alarm")  # what a device may send besides fixes
_HOLD_RETRY_S = 1.0
_DRAIN_RETRY_S = (0.5, 5.0)
_DB_RETRY_S = (1.0, 30.0)
_DRAIN_FIXES = 20000
_LAG_SAMPLE = 64
_FINAL_FLUSH_S = 15.0

# Test-only negative controls (IngestSettings.unsafe_disable_safeguard): each switches off one safeguard
# so the chaos tests can show that they see the loss it prevents.
UNSAFE_ACK_ON_RECEIPT = "ack_on_receipt"
UNSAFE_DROP_ON_STORE_FAILURE = "drop_on_store_failure"
UNSAFE_CLEAN_SESSION = "clean_session"
# Embedded mode only: the old path (amqtt PUBACKs a device on receipt; ingest is an MQTT client of it).
UNSAFE_BROKER_ACK_ON_RECEIPT = "broker_ack_on_receipt"
UNSAFE_MODES = (
    "",
    UNSAFE_ACK_ON_RECEIPT,
    UNSAFE_DROP_ON_STORE_FAILURE,
    UNSAFE_CLEAN_SESSION,
    UNSAFE_BROKER_ACK_ON_RECEIPT,
)


class Stored(NamedTuple):
    """What the database did with a batch of fixes."""

    new: int  # stored now (the rest were duplicates, or refused)
    refused: int  # refused for their content: dead-lettered as store_refused


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
        writer: FixWriter,
        directory: DeviceDirectory,
        validator: Validator,
        spool: Spool | None,
        on_accepted: OnAccepted,
        on_device_message: OnDeviceMessage | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if settings.unsafe_disable_safeguard not in UNSAFE_MODES:
            raise ValueError(f"unsafe_disable_safeguard={settings.unsafe_disable_safeguard!r}: unknown")
        self._settings = settings
        self._writer = writer
        self.directory = directory
        self._validator = validator
        self._spool = spool
        self._on_accepted = on_accepted
        self._on_device_message = on_device_message
        self._clock = clock
        self._unsafe = settings.unsafe_disable_safeguard
        self._batcher = Batcher(settings.batch_max_fixes, settings.batch_max_age_ms / 1000, time.monotonic)
        self._max_pending = settings.mqtt_receive_maximum
        self._pending = 0  # MQTT messages held, not yet acknowledged
        self._ack: Callable[[Sequence[int]], int] = lambda tokens: 0
        self._pause: Callable[[], None] = lambda: None
        self._resume: Callable[[], None] = lambda: None
        self._paused = False
        # After the database refuses a write, batches go to the spool until this (monotonic) time.
        self._db_down_until = 0.0
        self._db_retry_s = _DB_RETRY_S[0]
        self._spool_ready = asyncio.Event()
        # Store and spool work running in worker threads: a cancelled await does not stop the thread, so
        # the spool is closed only once these are done (see `_in_thread`, `settle`).
        self._threads: set[asyncio.Future[Any]] = set()
        self._log_budget = _RateLimit(settings.rejected_log_per_s)
        metrics.prepare(ALL_REASONS)
        self._update_spool_gauges()

    def attach(
        self, ack: Callable[[Sequence[int]], int], pause: Callable[[], None], resume: Callable[[], None]
    ) -> None:
        """Connect the MQTT subscriber: how to acknowledge, and how to stop and restart reading."""
        self._ack, self._pause, self._resume = ack, pause, resume

    # ------------------------------------------------------------------------------------------ MQTT
    def on_messages(self, messages: list[Message], received_s: float) -> None:
        """Decode, validate and batch one chunk of MQTT messages (called by the subscriber, on the loop)."""
        batch = self._batcher.current
        received_at = datetime.fromtimestamp(received_s, UTC)
        accepted: list[Fix] = []
        tokens = [token for _topic, _payload, token in messages if token >= 0]
        for topic, payload, token in messages:
            try:
                self._examine_mqtt(batch, topic, payload, token, received_s, received_at, accepted)
            except Exception:
                log.exception("ingest bug while processing a message; dead-lettered", extra={"topic": topic})
                self._dead_letter(batch, topic, payload, (PROCESSING_FAILED,), None, received_at)
        batch.received["mqtt"] = batch.received.get("mqtt", 0) + len(messages)
        if self._unsafe == UNSAFE_ACK_ON_RECEIPT:
            self._ack(tokens)  # the negative control: what an ack-on-receipt client (aiomqtt) does
        else:
            batch.acks.extend(tokens)
            self._pending += len(tokens)
        self._batcher.touch()
        self._publish(accepted)
        if self._pending >= self._max_pending and not self._paused:
            self._paused = True
            self._pause()
        metrics.PENDING_MESSAGES.set(self._pending)

    def _examine_mqtt(
        self,
        batch: Batch,
        topic: str,
        payload: bytes,
        token: int,
        received_s: float,
        received_at: datetime,
        accepted: list[Fix],
    ) -> None:
        if topic.startswith(_DEVICE_PREFIX) and not topic.endswith("/fix"):
            self._device_message(topic, payload)
            return
        decoded = decode_mqtt(topic, payload, max_payload_bytes=self._settings.max_payload_bytes)
        if self._should_park(decoded):
            batch.parked.append(Parked(topic, payload, token, received_s, "mqtt"))
            return
        self._examine(batch, topic, payload, decoded, received_at, accepted)

    def _should_park(self, decoded: Decoded) -> bool:
        """An unknown device, and the directory may be reloaded: decide after the reload (at flush)."""
        if not decoded.candidates or self.directory.register_unknown:
            return False
        return (
            self.directory.get(decoded.candidates[0].device_id) is None and self.directory.miss_refresh_due()
        )

    def _device_message(self, topic: str, payload: bytes) -> None:
        device_id, _, kind = topic[len(_DEVICE_PREFIX) :].rpartition("/")
        if kind not in DEVICE_MESSAGE_KINDS or not device_id or self._on_device_message is None:
            return
        device = self.directory.get(device_id)
        if device is None or not device.enabled:
            # Only a registered, enabled device may answer offers or raise an alarm (a P1 incident).
            log.warning(
                "device message from an unknown or disabled device ignored",
                extra={"device_id": device_id, "kind": kind},
            )
            return
        try:
            self.forward_device_message(device_id, kind, payload)
        except Exception:
            log.exception("device message handler failed", extra={"device_id": device_id, "kind": kind})

    @property
    def forwards_device_messages(self) -> bool:
        """Whether replies and alarms reach a dispatcher (the `ingest` role has none attached)."""
        return self._on_device_message is not None

    def forward_device_message(
        self, device_id: str, kind: str, payload: bytes
    ) -> Awaitable[DeviceOutcome] | None:
        """Hand a device's reply or alarm (`kind` in DEVICE_MESSAGE_KINDS) to dispatch, as MQTT does; the
        running task of its outcome, when the handler gives one. Raises what the handler raises."""
        if kind not in DEVICE_MESSAGE_KINDS:
            raise ValueError(f"device message kind {kind!r}: not one of {DEVICE_MESSAGE_KINDS}")
        if self._on_device_message is None:
            return None
        metrics.DEVICE_MESSAGES.labels(kind).inc()
        return self._on_device_message(device_id, kind, payload)

    # ------------------------------------------------------------------------------------------ both
    def _examine(
        self,
        batch: Batch,
        source: str,
        payload: bytes,
        decoded: Decoded,
        received_at: datetime,
        accepted: list[Fix],
    ) -> None:
        """Validate the candidates of one decoded message into `batch`: fixes, dead letters, tallies."""
        if decoded.ignored is not None:
            batch.count_ignored(decoded.ignored)
        for reasons, device_id in decoded.rejects:
            self._dead_letter(batch, source, payload, reasons, device_id, received_at)
        directory, validator = self.directory, self._validator
        for candidate in decoded.candidates:
            device = directory.get(candidate.device_id)
            if device is None and directory.register_unknown:
                device = directory.register(candidate.device_id)
            result = validator.check(candidate, device, received_at)
            if isinstance(result, Fix):
                batch.fixes.append(result)
                accepted.append(result)
            else:
                self._dead_letter(batch, source, payload, result.reasons, result.device_id, received_at)

    def _dead_letter(
        self,
        batch: Batch,
        source: str,
        payload: bytes,
        reasons: tuple[str, ...],
        device_id: str | None,
        received_at: datetime,
    ) -> None:
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

    def _publish(self, accepted: list[Fix]) -> None:
        """Hand validated fixes to the live index: fresh before they are even stored (the DB is the truth)."""
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
        if self._should_park(decoded):
            await self.directory.load()  # rate-limited by _should_park; unknown after it: rejected
        received_at = datetime.fromtimestamp(received_s, UTC)
        batch = self._batcher.current
        accepted: list[Fix] = []
        first_rejected = len(batch.rejected)
        self._examine(batch, source, payload, decoded, received_at, accepted)
        rejected = [r.reasons for r in batch.rejected[first_rejected:]]
        batch.received["http"] = batch.received.get("http", 0) + 1
        done: asyncio.Future[bool] | None = None
        if accepted:
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
        return Submission(len(accepted), rejected, durable)

    def _overloaded(self) -> bool:
        # HTTP has no receive window: refuse (503, the device retries) rather than grow without bound.
        return self._batcher.current.items >= 4 * max(self._settings.batch_max_fixes, self._max_pending)

    # ------------------------------------------------------------------------------------------ flushing
    async def run(self, stop: asyncio.Event) -> None:
        """Flush batches as they fall due, drain the spool, keep the directory fresh; until `stop`."""
        background = [asyncio.create_task(self._drain(stop)), asyncio.create_task(self.directory.run(stop))]
        try:
            while not stop.is_set():
                await _first_of(self._batcher.wait_due(), stop.wait())
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
        self._acknowledge(batch, durable)
        self._record(batch, stored, elapsed_s)

    async def _resolve_parked(self, batch: Batch) -> None:
        """Messages of unknown devices: reload the directory once, then validate them (unknown: rejected)."""
        if self.directory.miss_refresh_due():
            await self.directory.load()
        accepted: list[Fix] = []
        for p in batch.parked:
            received_at = datetime.fromtimestamp(p.received_s, UTC)
            decoded = decode_mqtt(p.source, p.payload, max_payload_bytes=self._settings.max_payload_bytes)
            try:
                self._examine(batch, p.source, p.payload, decoded, received_at, accepted)
            except Exception:
                log.exception(
                    "ingest bug while processing a message; dead-lettered", extra={"topic": p.source}
                )
                self._dead_letter(batch, p.source, p.payload, (PROCESSING_FAILED,), None, received_at)
        batch.parked.clear()
        self._publish(accepted)

    async def _make_durable(self, batch: Batch) -> tuple[bool, Stored | None]:
        """(durable, what the database did, or None if spooled). Holds the batch while nothing can take it."""
        if not batch.fixes and not batch.rejected:
            return True, Stored(0, 0)
        while True:
            if not self.spooling:
                try:
                    stored = await self._in_thread(self._store, batch.fixes, batch.rejected)
                except StoreUnavailable as exc:
                    metrics.STORE_UNAVAILABLE.inc()
                    log.warning("database unavailable; spooling", extra={"error": str(exc)[:300]})
                    if self._unsafe == UNSAFE_DROP_ON_STORE_FAILURE:
                        metrics.FIXES_DROPPED.inc(len(batch.fixes))
                        return False, None  # the negative control: acknowledged all the same, lost
                    self._database_down()
                else:
                    self._database_up()
                    return True, stored
            if self._spool is not None and await self._append_to_spool(batch):
                return True, None
            # Neither the database nor the spool can take it: no acks, the broker keeps the backlog.
            _answer(batch.waiters, False)
            await asyncio.sleep(_HOLD_RETRY_S)
            self._db_down_until = 0.0  # try the database again

    def _database_down(self) -> None:
        """Send batches to the spool for a while; the database is tried again after a growing pause (or
        as soon as the drainer gets a write through), so a probe that has to time out is rare."""
        self._db_down_until = time.monotonic() + self._db_retry_s
        self._db_retry_s = min(self._db_retry_s * 2, _DB_RETRY_S[1])

    def _database_up(self) -> None:
        self._db_down_until = 0.0
        self._db_retry_s = _DB_RETRY_S[0]

    async def _append_to_spool(self, batch: Batch) -> bool:
        assert self._spool is not None
        try:
            await self._in_thread(self._spool.append, batch.fixes, batch.rejected)
        except (SpoolFull, OSError) as exc:
            if self._log_budget.allow():
                log.error(
                    "spool cannot take the batch; holding it, not acknowledging",
                    extra={"error": str(exc), "spool_bytes": self._spool.depth_bytes},
                )
            return False
        metrics.FIXES_SPOOLED.inc(len(batch.fixes))
        self._update_spool_gauges()
        self._spool_ready.set()
        return True

    def _store(self, fixes: list[Fix], rejected: list[RejectedMessage]) -> Stored:
        """In a worker thread: one COPY for the fixes, then the dead letters.

        StoreUnavailable propagates (the caller spools). A batch the database refuses for its content
        (SQLSTATE class 22/23: a gap in validation) is split until the offending fixes are found; they
        become dead letters (`store_refused`), the rest is stored: one bad fix never blocks the stream.
        Any other failure (a server in the wrong state, a bug) raises StoreUnavailable too: the batch is
        kept, never dead-lettered for a fault that is not its own.
        """
        try:
            stored, refused = self._writer.write(fixes), []
        except Exception as exc:
            _raise_unless_content(exc, "fixes")
            log.exception("the database refused a batch for its content; isolating the offending fixes")
            half = len(fixes) // 2
            stored_a, refused_a = self._write_apart(fixes[:half])
            stored_b, refused_b = self._write_apart(fixes[half:])
            stored, refused = stored_a + stored_b, refused_a + refused_b
            metrics.REJECTED.labels(STORE_REFUSED).inc(len(refused))
        self._write_dead_letters([*rejected, *refused])
        return Stored(stored, len(refused))

    def _write_apart(self, fixes: list[Fix]) -> tuple[int, list[RejectedMessage]]:
        if not fixes:
            return 0, []
        try:
            return self._writer.write(fixes), []
        except Exception as exc:
            _raise_unless_content(exc, "fixes")
            if len(fixes) > 1:
                half = len(fixes) // 2
                stored_a, refused_a = self._write_apart(fixes[:half])
                stored_b, refused_b = self._write_apart(fixes[half:])
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

    def _write_dead_letters(self, rejected: list[RejectedMessage]) -> None:
        """Store the dead letters, or raise StoreUnavailable: a batch whose dead letters are not stored is
        not durable (it is spooled, or held unacknowledged), whatever the reason."""
        try:
            self._writer.write_rejected(rejected)
        except Exception as exc:
            _raise_unless_content(exc, "dead letters")
            log.exception("the database refused dead letters for their content; writing them one by one")
            for message in rejected:
                try:
                    self._writer.write_rejected([message])
                except Exception as one_exc:
                    _raise_unless_content(one_exc, "a dead letter")
                    # Its text fields are what the database can refuse (NUL, length); the raw payload is kept.
                    log.error(
                        "dead letter refused; storing it with escaped text",
                        extra={"dead_letter": str(message)},
                    )
                    try:
                        self._writer.write_rejected([_plain(message)])
                    except Exception as plain_exc:
                        raise StoreUnavailable(f"dead letter refused: {plain_exc}") from plain_exc

    def _acknowledge(self, batch: Batch, durable: bool) -> None:
        if batch.acks:
            self._ack(batch.acks)
            self._pending -= len(batch.acks)
        _answer(batch.waiters, durable)
        if self._paused and self._pending < self._max_pending // 2:
            self._paused = False
            self._resume()
        metrics.PENDING_MESSAGES.set(self._pending)

    def _record(self, batch: Batch, stored: Stored | None, elapsed_s: float) -> None:
        metrics.add_counts(metrics.MESSAGES_RECEIVED, batch.received)
        metrics.add_counts(metrics.REJECTED, batch.reasons)
        metrics.add_counts(metrics.IGNORED, batch.ignored)
        metrics.BATCH_SIZE.observe(batch.items)
        metrics.FLUSH_SECONDS.observe(elapsed_s)
        if stored is not None:
            self._count_stored(batch.fixes, stored)

    def _count_stored(self, fixes: Sequence[Fix], stored: Stored) -> None:
        metrics.FIXES_STORED.inc(stored.new)
        metrics.DUPLICATES_IGNORED.inc(len(fixes) - stored.new - stored.refused)
        if fixes:
            sample = fixes[:: max(1, len(fixes) // _LAG_SAMPLE)]
            metrics.observe_lag(
                [f.received_at.timestamp() for f in sample], [f.ts.timestamp() for f in sample], self._clock()
            )

    # ------------------------------------------------------------------------------------------ spool
    async def _drain(self, stop: asyncio.Event) -> None:
        """Replay the spool into the database, oldest first, whenever it holds anything."""
        spool = self._spool
        if spool is None:
            return
        delay_s = _DRAIN_RETRY_S[0]
        if not spool.is_empty():
            self._spool_ready.set()
        while not stop.is_set():
            await _first_of(self._spool_ready.wait(), stop.wait())
            if stop.is_set():
                return
            try:
                drained = await self._drain_some(spool)
            except StoreUnavailable:
                drained = None
            except Exception:  # a bug: keep the records on disk, keep trying, keep the live path free
                log.exception("spool drain failed; the spool keeps its records")
                drained = None
            if drained is None:
                await _sleep_unless(stop, delay_s)
                delay_s = min(delay_s * 2, _DRAIN_RETRY_S[1])
            else:
                delay_s = _DRAIN_RETRY_S[0]

    async def _drain_some(self, spool: Spool) -> int | None:
        """Write the oldest spooled records to the database; the fixes drained (0: the spool is empty)."""
        # Cleared before looking: an append that lands while the peek runs sets it again, so its batch is
        # drained now rather than left on disk until the next outage or restart.
        self._spool_ready.clear()
        records = await self._in_thread(spool.peek, _DRAIN_FIXES)
        if not records:
            return 0
        self._spool_ready.set()  # more may follow this chunk: look again
        fixes = [f for r in records for f in r.entry.fixes]
        rejected = [m for r in records for m in r.entry.rejected]
        stored = await self._in_thread(self._store, fixes, rejected)
        self._database_up()
        await self._in_thread(spool.commit, records[-1].end)
        self._count_stored(fixes, stored)
        self._update_spool_gauges()
        log.info(
            "spool drained into the database",
            extra={"fixes": len(fixes), "stored": stored.new, "left_bytes": spool.depth_bytes},
        )
        return len(fixes)

    def _update_spool_gauges(self) -> None:
        if self._spool is not None:
            metrics.SPOOL_BYTES.set(self._spool.depth_bytes)
            metrics.SPOOL_FIXES.set(self._spool.depth_fixes)

    async def _in_thread(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn` in a worker thread, tracked until it ends: cancelling the await (the bounded final flush,
        stopping the drainer) leaves the thread running, and `settle` waits for it before `close`."""
        work = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
        self._threads.add(work)
        work.add_done_callback(self._threads.discard)
        return await asyncio.shield(work)

    async def settle(self) -> None:
        """Wait for store and spool work still running in worker threads (their outcome is not needed:
        a batch not acknowledged is redelivered, and writes are idempotent)."""
        while self._threads:
            await asyncio.gather(*self._threads, return_exceptions=True)

    def close(self) -> None:
        """Release the spool (its undrained records stay on disk for the next start). Call `settle` (or
        let `run` end) first: a worker thread may still be writing to it."""
        if self._spool is not None:
            self._spool.close()

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
        return self._spool is not None and time.monotonic() < self._db_down_until


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


def _answer(waiters: list[asyncio.Future[bool]], durable: bool) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(durable)


class _RateLimit:
    """A token bucket: `allow()` at most `per_s` times a second on average (bursts of one second's worth)."""

    def __init__(self, per_s: float) -> None:
        self._per_s = per_s
        self._tokens = per_s
        self._at = time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._per_s, self._tokens + (now - self._at) * self._per_s)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


async def _sleep_unless(stop: asyncio.Event, delay_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), delay_s)


async def _first_of(*aws: object) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]  # type: ignore[call-overload]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
