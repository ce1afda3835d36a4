"""What the fleet sent, per device and seq: the expectation the oracle checks the store against.

Kept lean (one float and one int per message in typed arrays) so a million-message run stays small.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter, deque
from dataclasses import dataclass, field

from sim.loadtest.messages import VALID, Message, expected_reason


@dataclass
class DeviceLog:
    """One device's messages, indexed by seq - 1."""

    device_id: str
    published_s: array[float] = field(default_factory=lambda: array("d"))  # wall time of the first publish
    ts_ms: array[int] = field(default_factory=lambda: array("q"))  # the fix's own timestamp
    bad: dict[int, str] = field(default_factory=dict)  # seq → bad kind
    # [seq]: 1 once the commit watcher saw it stored (index 0 unused, so seq indexes it directly).
    watched: bytearray = field(default_factory=bytearray)

    @property
    def last_seq(self) -> int:
        """The highest seq sent so far (0: none)."""
        return len(self.published_s)


class Ledger:
    """Every first-time message and redelivery of one run."""

    def __init__(self, fmt: str = "outpost") -> None:
        self.format = fmt
        self.devices: dict[str, DeviceLog] = {}
        self.injected: Counter[str] = Counter()  # expected rejection reason → messages injected
        self.sent_valid = 0
        self.redelivered = 0
        self.messages = 0  # every publish, first-time and redeliveries
        # (device, ts_ms // 1000) → seq, only for formats without seq (see messages.py).
        self.seq_by_ts_s: dict[tuple[str, int], int] = {}
        self.index_by_ts = fmt != "outpost"
        # (ts_ms, device, seq) of valid messages in publish order for the commit watcher (None: no watcher).
        self.recent: deque[tuple[int, str, int]] | None = None

    def device(self, name: str, device_id: str) -> DeviceLog:
        """The log of `name`, created on first use."""
        log = self.devices.get(name)
        if log is None:
            log = self.devices[name] = DeviceLog(device_id)
            log.watched.append(0)  # seq 0 does not exist: index by seq directly
        return log

    def next_seq(self, name: str, device_id: str) -> int:
        """The seq the device's next message carries (1, 2, …)."""
        return self.device(name, device_id).last_seq + 1

    def record(self, msg: Message, published_s: float) -> None:
        """Note a first-time message; its seq must be the device's next one."""
        log = self.device(msg.device, msg.device_id)
        if msg.seq != log.last_seq + 1:
            raise ValueError(f"{msg.device}: seq {msg.seq} after {log.last_seq}")
        self.messages += 1
        log.ts_ms.append(msg.ts_ms)
        log.watched.append(0)
        if msg.kind == VALID:
            log.published_s.append(published_s)
            self.sent_valid += 1
            if self.index_by_ts:
                self.seq_by_ts_s[(msg.device, msg.ts_ms // 1000)] = msg.seq
            if self.recent is not None:
                self.recent.append((msg.ts_ms, msg.device, msg.seq))
        else:
            log.published_s.append(math.nan)
            log.bad[msg.seq] = msg.kind
            self.injected[expected_reason(self.format, msg.kind)] += 1

    def record_redelivery(self) -> None:
        """Note that a message was published again (same seq, same ts)."""
        self.messages += 1
        self.redelivered += 1

    def published_at(self, name: str, seq: int) -> float:
        """Wall time of the first publish of a valid message (NaN when unknown or bad)."""
        log = self.devices.get(name)
        if log is None or not 1 <= seq <= log.last_seq:
            return math.nan
        return log.published_s[seq - 1]

    @property
    def injected_total(self) -> int:
        """Bad messages sent."""
        return sum(self.injected.values())
