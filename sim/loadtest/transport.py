"""How the fleet's messages leave: MQTT publishers (one or several connections) or HTTP requests."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Protocol

import aiohttp

from ingest.mqtt.publisher import Publisher
from sim.loadtest.messages import Message

# Messages the transport may hold unacknowledged before the fleet waits (and falls behind its schedule,
# which the report shows): bounds the generator's memory whatever the server does.
MAX_PENDING = 200_000


class Transport(Protocol):
    """Where messages go. `send` never blocks; `room` is the fleet's backpressure point."""

    sent: int

    def send(self, msg: Message) -> None:
        """Queue one message."""
        ...

    async def room(self) -> None:
        """Return once fewer than MAX_PENDING messages are unacknowledged."""
        ...

    async def flush(self, timeout_s: float) -> bool:
        """Wait until everything sent is acknowledged; False on timeout."""
        ...

    def counters(self) -> dict[str, object]:
        """Delivery counters for the report."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class MqttTransport:
    """`connections` MQTT publishers; a device always uses the same one, so its messages stay in order."""

    def __init__(self, url: str, run_id: str, connections: int, qos: int) -> None:
        self.qos = qos
        self.publishers = [Publisher(url, f"lt-{run_id}-pub{k}") for k in range(connections)]
        self.sent = 0

    async def connect(self) -> None:
        """Connect every publisher."""
        await asyncio.gather(*(p.connect() for p in self.publishers))

    def send(self, msg: Message) -> None:
        """Publish on the device's connection."""
        self.sent += 1
        lane = int(msg.device[1:]) % len(self.publishers)
        self.publishers[lane].publish(msg.topic, msg.payload, self.qos)

    async def room(self) -> None:
        """Backpressure: wait while any publisher holds too many unacknowledged messages."""
        for p in self.publishers:
            if p.pending >= MAX_PENDING:
                await p.wait_pending_below(MAX_PENDING // 2)

    async def flush(self, timeout_s: float) -> bool:
        """Wait for every PUBACK (QoS 1) or write (QoS 0)."""
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.gather(*(p.flush(timeout_s) for p in self.publishers))
        except TimeoutError:
            return False
        return True

    def counters(self) -> dict[str, object]:
        """published, acked (PUBACK for QoS 1) and dropped (QoS 0 while disconnected)."""
        return {
            "transport": "mqtt",
            "qos": self.qos,
            "connections": len(self.publishers),
            "published": sum(p.sent for p in self.publishers),
            "acked": sum(p.acked for p in self.publishers),
            "dropped": sum(p.dropped for p in self.publishers),
        }

    async def close(self) -> None:
        """Disconnect every publisher."""
        await asyncio.gather(*(p.close() for p in self.publishers), return_exceptions=True)


class HttpTransport:
    """OsmAnd-protocol requests (what Traccar Client sends), at most `concurrency` at a time."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, concurrency: int = 32) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.sent = 0
        self.acked = 0
        self.errors = 0
        self.status: Counter[int] = Counter()
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._room = asyncio.Event()
        self._room.set()

    def send(self, msg: Message) -> None:
        """Start the request in the background."""
        self.sent += 1
        self._idle.clear()
        task = asyncio.get_running_loop().create_task(self._post(msg))
        self._tasks.add(task)
        task.add_done_callback(self._done)
        if len(self._tasks) >= MAX_PENDING:
            self._room.clear()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if len(self._tasks) < MAX_PENDING // 2:
            self._room.set()
        if not self._tasks:
            self._idle.set()

    async def _post(self, msg: Message) -> None:
        url = f"{self.base_url}{msg.topic}?{msg.payload.decode()}"
        async with self._slots:
            try:
                async with self.session.post(url) as resp:
                    await resp.read()
                    self.status[resp.status] += 1
                    if 200 <= resp.status < 300:
                        self.acked += 1
            except (aiohttp.ClientError, TimeoutError):
                self.errors += 1

    async def room(self) -> None:
        """Backpressure: wait while too many requests are outstanding."""
        await self._room.wait()

    async def flush(self, timeout_s: float) -> bool:
        """Wait until every request has an answer."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def counters(self) -> dict[str, object]:
        """requests sent, 2xx answers, answers per status, connection errors."""
        return {
            "transport": "http",
            "published": self.sent,
            "acked": self.acked,
            "errors": self.errors,
            "status": {str(k): v for k, v in sorted(self.status.items())},
        }

    async def close(self) -> None:
        """Cancel what is still outstanding (after `flush`, nothing is)."""
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)
