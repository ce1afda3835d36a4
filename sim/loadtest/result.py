"""Everything one run produced, handed from the runner to the report and the chart."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sim.loadtest.ledger import Ledger
from sim.loadtest.metrics import Recorder
from sim.loadtest.oracle import Verdict
from sim.loadtest.plan import Plan


@dataclass
class RunResult:
    """The raw outcome of a run (see report.build_report for its JSON form)."""

    plan: Plan
    started_s: float  # wall time of the first scheduled message
    fleet_done_s: float  # when the last fleet message was handed to the transport
    ended_s: float  # after draining and the oracle read
    ledger: Ledger
    recorder: Recorder
    verdict: Verdict | None
    delivery: dict[str, Any]
    generator_behind_s: float
    drained: bool
    dispatch: dict[str, Any] = field(default_factory=dict)
    probes: dict[str, Any] = field(default_factory=dict)
    watcher: dict[str, Any] = field(default_factory=dict)
    processes: dict[str, Any] = field(default_factory=dict)
    cpu_series: dict[str, list[float | None]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
