"""Test helper: a real MQTT subscriber (aiomqtt, QoS 1) that collects what a broker delivers."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiomqtt


@dataclass
class Collected:
    """Messages received so far, as (topic, payload)."""

    messages: list[tuple[str, bytes]] = field(default_factory=list)
    _grew: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, count: int, timeout_s: float = 30.0) -> None:
        """Wait until at least `count` messages arrived (TimeoutError otherwise)."""
        async with asyncio.timeout(timeout_s):
            while len(self.messages) < count:
                self._grew.clear()
                await self._grew.wait()


@contextlib.asynccontextmanager
async def collect(
    port: int,
    topic: str = "#",
    *,
    host: str = "127.0.0.1",
    keep: Callable[[str], bool] = lambda _t: True,
    login: tuple[str, str] | None = None,
    tls: ssl.SSLContext | None = None,
) -> AsyncIterator[Collected]:
    """Subscribe to `topic` at QoS 1 on host:port and collect messages in the background. `login`:
    (user name, password), e.g. tests.support.mqtt_login.service_login of the embedded broker; `tls`:
    connect over TLS with this context."""
    out = Collected()
    username, password = login or (None, None)
    async with aiomqtt.Client(
        host, port, identifier="test-collector", username=username, password=password, tls_context=tls
    ) as client:
        await client.subscribe(topic, qos=1)

        async def pump() -> None:
            async for message in client.messages:
                if keep(str(message.topic)):
                    out.messages.append((str(message.topic), bytes(message.payload)))  # type: ignore[arg-type]
                    out._grew.set()

        task = asyncio.create_task(pump())
        try:
            yield out
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
