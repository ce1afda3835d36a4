"""The ports of the ingest pipeline: what each stage needs from its collaborators, named and typed.

    receive      Message, OnMessages        what a receiver (MQTT subscriber, embedded broker) hands on
    decode       ingest.decode              (plain functions)
    validate     Registry, FixValidator     the device directory, the rules
    batch        ingest.batch               (plain data)
    write        FixStore, SpoolStore       the database writer, the local spool
    acknowledge  Receiver                   PUBACKs and the read window
    publish      OnAccepted                 the live picture (dispatch's fleet)
    devices      OnDeviceMessage            replies and alarms, handed to dispatch

The composition root (and ingest.runner) fills them: `FixWriter`, `Spool`, `DeviceDirectory`, `Validator`,
`MqttSubscriber` / `EmbeddedSource`, and dispatch's callables. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from datetime import datetime
from typing import Protocol

from ingest.decode.model import Candidate
from ingest.device_info import DeviceInfo
from schemas.fix import Fix, RejectedMessage

# (topic, payload, ack token). Token NO_ACK: a QoS 0 message, nothing to acknowledge.
Message = tuple[str, bytes, int]
NO_ACK = -1


class OnMessages(Protocol):
    """Takes one chunk of received messages, read at epoch time `received_s` (called on the loop)."""

    def __call__(self, messages: list[Message], received_s: float, /) -> None: ...


class Receiver(Protocol):
    """Where messages come from: acknowledges them once durable, and stops reading when asked."""

    def ack(self, tokens: Sequence[int]) -> int:
        """Acknowledge the messages of `tokens` (stale tokens are ignored); returns how many."""
        ...

    def pause(self) -> None:
        """Stop reading (backpressure)."""
        ...

    def resume(self) -> None:
        """Read again after `pause`."""
        ...


class Registry(Protocol):
    """The devices validation knows (ingest.devices.DeviceDirectory)."""

    register_unknown: bool

    def get(self, device_id: str) -> DeviceInfo | None:
        """The device, or None if unknown."""
        ...

    def register(self, device_id: str) -> DeviceInfo | None:
        """Know `device_id` from now on; None when it cannot be registered."""
        ...

    def miss_refresh_due(self) -> bool:
        """Whether a miss may trigger a reload now."""
        ...


class Rejection(Protocol):
    """A candidate that failed validation (ingest.validate.Rejected)."""

    @property
    def reasons(self) -> tuple[str, ...]: ...

    @property
    def device_id(self) -> str | None: ...


class FixValidator(Protocol):
    """The rules (ingest.validate.Validator)."""

    def check(self, c: Candidate, device: DeviceInfo | None, received_at: datetime) -> Fix | Rejection:
        """A `Fix` (perhaps flagged), or the reasons it is rejected."""
        ...

    def seed(self, fixes: Sequence[Fix]) -> None:
        """Restore per-device state from stored fixes."""
        ...


class FixStore(Protocol):
    """The database (store.fixes.FixWriter); runs in a worker thread. Raises StoreUnavailable when away."""

    def write(self, fixes: Sequence[Fix]) -> int:
        """Store `fixes` (idempotent on device and time); how many were new."""
        ...

    def write_rejected(self, rows: Sequence[RejectedMessage]) -> None:
        """Store dead letters."""
        ...


class SpoolRecordLike(Protocol):
    """One spooled record read back (ingest.spool.SpoolRecord)."""

    @property
    def entry(self) -> SpoolEntryLike: ...

    @property
    def end(self) -> tuple[int, int]: ...


class SpoolEntryLike(Protocol):
    """What a spooled record holds."""

    @property
    def fixes(self) -> list[Fix]: ...

    @property
    def rejected(self) -> list[RejectedMessage]: ...


class SpoolStore(Protocol):
    """The local spool while the database is away (ingest.spool.Spool); blocking, called in threads."""

    @property
    def depth_bytes(self) -> int: ...

    @property
    def depth_fixes(self) -> int: ...

    def is_empty(self) -> bool:
        """Nothing left to drain."""
        ...

    def append(self, fixes: Sequence[Fix], rejected: Sequence[RejectedMessage]) -> None:
        """Make a batch durable on disk (raises SpoolFull or OSError)."""
        ...

    def peek(self, max_fixes: int = ...) -> Sequence[SpoolRecordLike]:
        """The oldest records, up to about `max_fixes` fixes."""
        ...

    def commit(self, position: tuple[int, int]) -> None:
        """Forget everything up to `position` (drained)."""
        ...

    def close(self) -> None:
        """Release the files."""
        ...


class OnAccepted(Protocol):
    """The live picture: takes validated fixes before they are stored (the database stays the truth)."""

    def __call__(self, fixes: Sequence[Fix], /) -> None: ...


class DeviceOutcome(Protocol):
    """What dispatch made of a device's reply or alarm: taken or not, and why (told to HTTP devices)."""

    @property
    def ok(self) -> bool: ...

    @property
    def detail(self) -> str: ...


class OnDeviceMessage(Protocol):
    """Dispatch's handler of a device's reply or alarm: (device id, kind "reply" | "alarm", payload).

    It must not block the loop: it starts its own work and may return it as a running task, whose
    outcome HTTP devices are told. MQTT publishes get no answer, so the MQTT path drops the task (a task,
    not a bare coroutine, so dropping it never drops the work).
    """

    def __call__(self, device_id: str, kind: str, payload: bytes, /) -> Awaitable[DeviceOutcome] | None: ...
