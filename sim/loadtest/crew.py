"""What every actor of one load-test run shares: the plan, the ledger, the recorder and the run's time.

The fleet, the visibility probe, the commit watcher and the dispatcher load each take one `Crew` instead of
the same five arguments; a test builds one with simulated time (`clock`, `sleep`) to run them instantly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sim.loadtest.ledger import Ledger
from sim.loadtest.metrics import Recorder
from sim.loadtest.plan import Plan

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Crew:
    """The run's shared parts: `ledger` holds what was sent, `recorder` what was measured."""

    plan: Plan
    ledger: Ledger
    recorder: Recorder
    clock: Clock
    sleep: Sleep
