"""Helpers for the load test's tests: simulated time and a transport that only records."""

from __future__ import annotations

import asyncio

from sim.loadtest.messages import Message


class SimTime:
    """A clock whose sleep advances it: a paced loop runs instantly and deterministically."""

    def __init__(self, start_s: float = 1_700_000_000.0) -> None:
        self.now_s = start_s

    def clock(self) -> float:
        return self.now_s

    async def sleep(self, s: float) -> None:
        self.now_s += max(0.0, s)
        await asyncio.sleep(0)


class RecordingTransport:
    """Keeps every message in order (the fleet's unit tests check what it sends, not delivery)."""

    def __init__(self) -> None:
        self.sent = 0
        self.messages: list[Message] = []

    def send(self, msg: Message) -> None:
        self.sent += 1
        self.messages.append(msg)

    async def room(self) -> None:
        return None

    async def flush(self, timeout_s: float) -> bool:
        return True

    def counters(self) -> dict[str, object]:
        return {"transport": "recording", "published": self.sent, "acked": self.sent}

    async def close(self) -> None:
        return None
