"""The event bus: fan-out of live events to console streams and to devices.

`publish(event)` is synchronous and cheap: it never waits for a reader. Each stream subscriber has a
bounded queue; a console that cannot keep up is dropped (its stream ends and it reconnects), never the
server. Unit moves are coalesced: the latest move of each unit is held and delivered once per
`coalesce_s`, so a console gets at most 1/coalesce_s updates per unit per second however fast devices
report. Other events (status changes, incidents, separations) are delivered at once, in order, and are
also handed to the optional device sink (the composition root wires it to MQTT).

Every event a subscriber can see gets an id when it is fanned out, one counter for the whole bus, so ids
increase across connections. The counter starts at the boot time in microseconds: a restarted server's ids
are above every id the previous run gave out (unless the previous run averaged more than a million events a
second, or the wall clock stepped back), so a client can always tell an old id from a new one. The last
`replay_max` events are kept; `replay(after_id)` gives a reconnecting client what it missed, or None when
the gap is older than the buffer (or from another run): the stream then tells it to `resync`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Gauge

from dispatch.clock import Clock

log = logging.getLogger(__name__)

Event = dict[str, Any]
Stamped = tuple[int, Event]  # (event id, event); id 0: a marker of the stream, not a bus event
DeviceSink = Callable[[Event], None]

STREAM_SUBSCRIBERS = Gauge("outpost_stream_subscribers", "Live stream subscribers connected")
STREAM_DROPPED = Counter("outpost_stream_dropped_total", "Live stream subscribers dropped for being too slow")

_CLOSED: Event = {"type": "stream.closed", "reason": "too slow: reconnect"}
KEEPALIVE: Event = {"type": "keepalive"}
# After the last subscriber leaves, coalesced events are still held and kept this long (s), so that a console
# whose connection was cut finds the moves it missed when it comes back; after that nothing is built for
# nobody. Longer: a little work for longer after the last console has gone.
RECONNECT_GRACE_S = 120.0


class Subscription:
    """One reader's bounded queue, and an async iterator over it that ends when the subscription closes."""

    def __init__(self, bus: EventBus, max_queued: int, accept: Callable[[Event], bool] | None) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[Stamped] = asyncio.Queue(max_queued + 1)
        self._max = max_queued
        self.accept = accept
        self.closed = False

    def offer(self, event: Event, event_id: int = 0) -> bool:
        """Queue an event; False (and the subscription closes) when the reader has fallen too far behind."""
        if self.closed:
            return False
        if self.accept is not None and not self.accept(event):
            return True
        if self._queue.qsize() >= self._max:
            self.closed = True
            self._queue.put_nowait((0, _CLOSED))  # the one slot kept free for the goodbye
            return False
        self._queue.put_nowait((event_id, event))
        return True

    def keepalive(self) -> None:
        """Queue a keep-alive marker (skipped when the queue is full: the reader is busy anyway)."""
        if not self.closed and self._queue.qsize() < self._max:
            self._queue.put_nowait((0, KEEPALIVE))

    def close(self) -> None:
        """Stop receiving; the iterator ends after what is queued."""
        self._bus.unsubscribe(self)
        if not self.closed:
            self.closed = True
            self._queue.put_nowait((0, _CLOSED))

    async def get(self) -> Event:
        """The next event (a `stream.closed` event last)."""
        return (await self._queue.get())[1]

    async def get_stamped(self) -> Stamped:
        """The next event with its id (0 for the stream's own markers: keep-alive, `stream.closed`)."""
        return await self._queue.get()

    def get_nowait(self) -> Event | None:
        """The next queued event, or None."""
        try:
            return self._queue.get_nowait()[1]
        except asyncio.QueueEmpty:
            return None

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        _, event = await self._queue.get()
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
        replay_max: int = 20_000,
        device_sink: DeviceSink | None = None,
    ) -> None:
        self._clock = clock
        self._coalesce_s = coalesce_s
        self._max_queued = max_queued
        self._subs: list[Subscription] = []
        self._held: dict[str, Event] = {}
        self.device_sink = device_sink
        # (id, event, coalescing key): what a reconnecting client may still be given.
        self._recent: deque[tuple[int, Event, str | None]] = deque(maxlen=replay_max)
        self._last_id = max(0, int(clock.now() * 1_000_000))
        self._first_id = self._last_id + 1  # the oldest id this run can still replay
        self._left_at: float | None = None  # when the last subscriber left

    @property
    def last_id(self) -> int:
        """The id of the newest event given out (the boot seed before the first)."""
        return self._last_id

    @property
    def subscribers(self) -> int:
        """Live subscriptions."""
        return len(self._subs)

    @property
    def wanted(self) -> bool:
        """Whether coalesced events are worth building: someone is subscribed, or was within the grace."""
        if self._subs:
            return True
        return self._left_at is not None and self._clock.now() - self._left_at < RECONNECT_GRACE_S

    def publish(self, event: Event, *, coalesce_key: str | None = None) -> None:
        """Deliver an event; with a `coalesce_key`, only the latest per key is delivered at the next flush."""
        if coalesce_key is not None:
            if self.wanted:
                self._held[coalesce_key] = event
            return
        self._fan_out(event)
        if self.device_sink is not None:
            try:
                self.device_sink(event)
            except Exception:
                log.warning("device sink failed for %s", event.get("type"), exc_info=True)

    def fan_in(self, event: Event) -> None:
        """Deliver an event that another process published (dispatch.replica_events) to this bus's
        subscribers only: the device sink already had it there."""
        self._fan_out(event)

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
            if not self._subs:
                self._left_at = self._clock.now()

    def flush(self) -> int:
        """Deliver the held (coalesced) events now; returns how many."""
        held, self._held = self._held, {}
        for key, event in held.items():
            self._fan_out(event, key)
        return len(held)

    def replay(self, after_id: int, accept: Callable[[Event], bool] | None = None) -> list[Stamped] | None:
        """The events after `after_id` still held, oldest first (of coalesced ones only the latest per key,
        as the live stream would have sent them), or None when some of them are gone: the gap is older than
        the buffer, or `after_id` comes from another run (or from nowhere)."""
        if after_id > self._last_id or after_id + 1 < self._first_id:
            return None
        seen: set[str] = set()
        out: list[Stamped] = []
        for event_id, event, key in reversed(self._recent):
            if event_id <= after_id:
                break
            if key is not None:
                if key in seen:
                    continue
                seen.add(key)
            if accept is None or accept(event):
                out.append((event_id, event))
        out.reverse()
        return out

    async def run(self) -> None:
        """Flush coalesced events every `coalesce_s`, forever."""
        while True:
            await self._clock.sleep(self._coalesce_s)
            self.flush()

    def _fan_out(self, event: Event, key: str | None = None) -> None:
        self._last_id += 1
        if len(self._recent) == self._recent.maxlen:
            self._first_id = self._recent[0][0] + 1
        self._recent.append((self._last_id, event, key))
        dropped = [sub for sub in self._subs if not sub.offer(event, self._last_id)]
        for sub in dropped:
            STREAM_DROPPED.inc()
            log.info("dropping a live stream subscriber that fell %d events behind", self._max_queued)
            self.unsubscribe(sub)
