"""The event bus: fan-out of live events to console streams and to devices.

`publish(event)` is synchronous and cheap: it never waits for a reader. Each stream subscriber has a
bounded queue; a console that cannot keep up is dropped (its stream ends and it reconnects), never the
server. Unit moves are coalesced: the latest move of each unit is held and delivered once per
`coalesce_s`, so a console gets at most 1/coalesce_s updates per unit per second however fast devices
report. Other events (status changes, incidents, separations) are delivered at once, in order, and are
also handed to the optional device sink (the composition root wires it to MQTT).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Gauge

from dispatch.clock import Clock

log = logging.getLogger(__name__)

Event = dict[str, Any]
DeviceSink = Callable[[Event], None]

STREAM_SUBSCRIBERS = Gauge("outpost_stream_subscribers", "Live stream subscribers connected")
STREAM_DROPPED = Counter("outpost_stream_dropped_total", "Live stream subscribers dropped for being too slow")

_CLOSED: Event = {"type": "stream.closed", "reason": "too slow: reconnect"}
KEEPALIVE: Event = {"type": "keepalive"}


class Subscription:
    """One reader's bounded queue, and an async iterator over it that ends when the subscription closes."""

    def __init__(self, bus: EventBus, max_queued: int, accept: Callable[[Event], bool] | None) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[Event] = asyncio.Queue(max_queued + 1)
        self._max = max_queued
        self.accept = accept
        self.closed = False

    def offer(self, event: Event) -> bool:
        """Queue an event; False (and the subscription closes) when the reader has fallen too far behind."""
        if self.closed:
            return False
        if self.accept is not None and not self.accept(event):
            return True
        if self._queue.qsize() >= self._max:
            self.closed = True
            self._queue.put_nowait(_CLOSED)  # the one slot kept free for the goodbye
            return False
        self._queue.put_nowait(event)
        return True

    def keepalive(self) -> None:
        """Queue a keep-alive marker (skipped when the queue is full: the reader is busy anyway)."""
        if not self.closed and self._queue.qsize() < self._max:
            self._queue.put_nowait(KEEPALIVE)

    def close(self) -> None:
        """Stop receiving; the iterator ends after what is queued."""
        self._bus.unsubscribe(self)
        if not self.closed:
            self.closed = True
            self._queue.put_nowait(_CLOSED)

    async def get(self) -> Event:
        """The next event (a `stream.closed` event last)."""
        return await self._queue.get()

    def get_nowait(self) -> Event | None:
        """The next queued event, or None."""
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        event = await self._queue.get()
        if event is _CLOSED:
            raise StopAsyncIteration
        return event


class EventBus:
    """Publish events to stream subscribers (bounded, coalesced moves) and to a device sink."""

    def __init__(
        self,
        clock: Clock,
        *,
        coalesce_s: float = 0.25,
        max_queued: int = 10_000,
        device_sink: DeviceSink | None = None,
    ) -> None:
        self._clock = clock
        self._coalesce_s = coalesce_s
        self._max_queued = max_queued
        self._subs: list[Subscription] = []
        self._held: dict[str, Event] = {}
        self.device_sink = device_sink

    @property
    def subscribers(self) -> int:
        """Live subscriptions."""
        return len(self._subs)

    def publish(self, event: Event, *, coalesce_key: str | None = None) -> None:
        """Deliver an event; with a `coalesce_key`, only the latest per key is delivered at the next flush."""
        if coalesce_key is not None:
            if self._subs:
                self._held[coalesce_key] = event
            return
        self._fan_out(event)
        if self.device_sink is not None:
            try:
                self.device_sink(event)
            except Exception:
                log.warning("device sink failed for %s", event.get("type"), exc_info=True)

    def subscribe(self, accept: Callable[[Event], bool] | None = None) -> Subscription:
        """A new subscription (optionally only events for which `accept` is true); close it when done."""
        sub = Subscription(self, self._max_queued, accept)
        self._subs.append(sub)
        STREAM_SUBSCRIBERS.set(len(self._subs))
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget a subscription (idempotent)."""
        if sub in self._subs:
            self._subs.remove(sub)
            STREAM_SUBSCRIBERS.set(len(self._subs))

    def flush(self) -> int:
        """Deliver the held (coalesced) events now; returns how many."""
        held, self._held = self._held, {}
        for event in held.values():
            self._fan_out(event)
        return len(held)

    async def run(self) -> None:
        """Flush coalesced events every `coalesce_s`, forever."""
        while True:
            await self._clock.sleep(self._coalesce_s)
            self.flush()

    def _fan_out(self, event: Event) -> None:
        dropped = [sub for sub in self._subs if not sub.offer(event)]
        for sub in dropped:
            STREAM_DROPPED.inc()
            log.info("dropping a live stream subscriber that fell %d events behind", self._max_queued)
            self.unsubscribe(sub)
