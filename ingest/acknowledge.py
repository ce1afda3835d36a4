"""The acknowledge stage, and the backpressure it carries: a batch's MQTT messages are acknowledged, and its
HTTP requests answered, only once it is durable. Reading pauses once `max_pending` messages wait
unacknowledged (the broker, or the devices, keep the rest) and resumes when half of them are gone."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ingest import metrics
from ingest.batch import Batch
from ingest.ports import Receiver


class _Unattached:
    """The receiver until one is attached (HTTP-only use, tests): nothing to acknowledge or pause."""

    def ack(self, tokens: Sequence[int]) -> int:
        return 0

    def pause(self) -> None:
        pass

    def resume(self) -> None:
        pass


class Acknowledger:
    """Holds the ack tokens of messages not yet durable; acknowledges them, and pauses reading meanwhile."""

    def __init__(self, max_pending: int) -> None:
        self.max_pending = max_pending
        self.pending = 0  # MQTT messages held, not yet acknowledged
        self._receiver: Receiver = _Unattached()
        self._paused = False

    def attach(self, receiver: Receiver) -> None:
        """Connect the receiver: how to acknowledge, and how to stop and restart reading."""
        self._receiver = receiver

    def ack_now(self, tokens: Sequence[int]) -> None:
        """Acknowledge on receipt: only the negative control `ack_on_receipt` does (what aiomqtt does)."""
        self._receiver.ack(tokens)

    def hold(self, batch: Batch, tokens: list[int]) -> None:
        """Keep `tokens` with `batch` until it is durable."""
        batch.acks.extend(tokens)
        self.pending += len(tokens)

    def pause_if_full(self) -> None:
        """Stop reading once `max_pending` messages wait unacknowledged."""
        if self.pending >= self.max_pending and not self._paused:
            self._paused = True
            self._receiver.pause()
        metrics.PENDING_MESSAGES.set(self.pending)

    def acknowledge(self, batch: Batch, durable: bool) -> None:
        """`batch` is done with: acknowledge its messages, answer its HTTP requests, maybe read again."""
        if batch.acks:
            self._receiver.ack(batch.acks)
            self.pending -= len(batch.acks)
        answer(batch.waiters, durable)
        if self._paused and self.pending < self.max_pending // 2:
            self._paused = False
            self._receiver.resume()
        metrics.PENDING_MESSAGES.set(self.pending)


def answer(waiters: list[asyncio.Future[bool]], durable: bool) -> None:
    """Tell the HTTP requests waiting on a batch whether it is durable."""
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(durable)
