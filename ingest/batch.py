"""Batching: what is waiting to be made durable together, and when it is due (by size or by age).

A batch carries the fixes and dead letters to store, the MQTT acknowledgements to send once they are
durable (in receive order), and the HTTP requests waiting for the same moment. Tallies for the metrics
ride along as plain ints, so the hot path never touches a lock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from schemas.fix import Fix, RejectedMessage


@dataclass(frozen=True, slots=True)
class Parked:
    """A message naming a device the directory did not know; re-examined after a directory refresh."""

    source: str  # topic or endpoint
    payload: bytes
    token: int  # MQTT ack token, or -1
    received_s: float
    transport: str


@dataclass(slots=True)
class Batch:
    """One unit of durability: stored (or spooled) in one go, then acknowledged in one go."""

    fixes: list[Fix] = field(default_factory=list)
    rejected: list[RejectedMessage] = field(default_factory=list)
    acks: list[int] = field(default_factory=list)  # MQTT ack tokens, in receive order
    waiters: list[asyncio.Future[bool]] = field(default_factory=list)  # HTTP requests: True once durable
    parked: list[Parked] = field(default_factory=list)
    received: dict[str, int] = field(default_factory=dict)  # messages per transport
    reasons: dict[str, int] = field(default_factory=dict)  # dead letters per reason
    ignored: dict[str, int] = field(default_factory=dict)  # ignored messages per kind
    opened_s: float = 0.0  # monotonic time of its first item

    @property
    def items(self) -> int:
        """Fixes and dead letters: what counts towards the size limit."""
        return len(self.fixes) + len(self.rejected)

    def is_empty(self) -> bool:
        """Nothing to store, acknowledge or answer."""
        return not (self.fixes or self.rejected or self.acks or self.waiters or self.parked)

    def add_rejected(self, message: RejectedMessage) -> None:
        """Queue a dead letter and count its reasons."""
        self.rejected.append(message)
        for reason in message.reasons:
            self.reasons[reason] = self.reasons.get(reason, 0) + 1

    def count_ignored(self, kind: str) -> None:
        """Count a valid message that carries no position."""
        self.ignored[kind] = self.ignored.get(kind, 0) + 1


class Batcher:
    """Holds the open batch and says when it is due: `max_items` reached, or its first item `max_age_s` old"""

    def __init__(self, max_items: int, max_age_s: float, clock: Callable[[], float]) -> None:
        self._max_items = max_items
        self._max_age_s = max_age_s
        self._clock = clock  # monotonic seconds (the event loop's time)
        self.current = Batch()
        self._due = asyncio.Event()  # set when the open batch is full
        self._opened = asyncio.Event()  # set when the open batch gets its first item

    def touch(self) -> None:
        """Call after adding to `current`: starts its age clock and signals fullness."""
        batch = self.current
        if not self._opened.is_set() and not batch.is_empty():
            batch.opened_s = self._clock()
            self._opened.set()
        if batch.items >= self._max_items:
            self._due.set()

    def is_full(self) -> bool:
        """Whether the open batch has reached its size limit."""
        return self.current.items >= self._max_items

    async def wait_due(self) -> None:
        """Return once the open batch is due: full, or old enough (never for an empty batch)."""
        await self._opened.wait()
        deadline = self.current.opened_s + self._max_age_s
        delay_s = deadline - self._clock()
        if delay_s > 0 and not self._due.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._due.wait(), delay_s)

    def take(self) -> Batch:
        """Close the open batch and return it; a fresh one takes its place."""
        batch, self.current = self.current, Batch()
        self._due.clear()
        self._opened.clear()
        return batch
