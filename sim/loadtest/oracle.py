"""The oracle: compare what the fleet sent (the ledger) with what the store holds.

lost = valid messages with no stored row; duplicated = stored rows beyond the first for one (device, seq).
A redelivery repeats seq and ts, so the store's (device_id, ts) key must absorb it; a duplicate would show as
the same seq under another ts. Dead letters are compared per reason with what was injected.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from sim.loadtest.ledger import Ledger
from sim.loadtest.metrics import Recorder
from sim.loadtest.store import StoredFix

# The fleet's device name ends every device id (d… fleet, p… probes), whatever prefix the format adds.
_NAME = re.compile(r"([dp]\d{6})$")
_SAMPLE = 20


@dataclass
class Verdict:
    """The oracle's findings for one run."""

    sent_valid: int
    stored_rows: int = 0
    stored: int = 0  # distinct valid messages found in the store
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0  # stored rows that match no message we sent
    bad_stored: Counter[str] = field(default_factory=Counter)  # bad messages that were stored anyway
    rejected: Counter[str] = field(default_factory=Counter)  # reason → dead letters naming it
    rejected_rows: int = 0
    injected: Counter[str] = field(default_factory=Counter)
    lost_sample: list[str] = field(default_factory=list)
    duplicated_sample: list[str] = field(default_factory=list)

    @property
    def rejects_match(self) -> bool:
        """Every injected reason counted exactly, and no other dead letter for the run."""
        per_reason = all(self.rejected[r] == n for r, n in self.injected.items())
        return per_reason and self.rejected_rows == sum(self.injected.values())

    @property
    def passed(self) -> bool:
        """0 lost, 0 duplicated, nothing bad or unknown stored, dead letters as injected."""
        return (
            self.lost == 0
            and self.duplicated == 0
            and self.unexpected == 0
            and not self.bad_stored
            and self.rejects_match
        )


def reconcile(
    ledger: Ledger,
    fixes: Iterable[StoredFix],
    rejected: Iterable[list[str]],
    recorder: Recorder | None = None,
    observed_s: float | None = None,
) -> Verdict:
    """Count lost, duplicated and unexpected fixes and the dead letters per reason.

    With a recorder, also records publish → received latency from each fix's `received_at` (a lower bound of
    publish → stored: Outpost stamps it on receipt, before the commit), and, when a commit watcher ran
    (`observed_s` is when this read started), publish → stored for the fixes the watcher did not see.
    """
    verdict = Verdict(sent_valid=ledger.sent_valid, injected=Counter(ledger.injected))
    counts = {name: bytearray(log.last_seq + 1) for name, log in ledger.devices.items()}
    for row in fixes:
        verdict.stored_rows += 1
        key = _key(ledger, row)
        if key is None:
            verdict.unexpected += 1
            continue
        name, seq = key
        log = ledger.devices[name]
        if seq in log.bad:
            verdict.bad_stored[log.bad[seq]] += 1
            continue
        seen = counts[name]
        if seen[seq]:
            verdict.duplicated += 1
            if len(verdict.duplicated_sample) < _SAMPLE:
                verdict.duplicated_sample.append(f"{log.device_id}#{seq}")
        else:
            verdict.stored += 1
            if recorder is not None:
                _record(recorder, row, log.published_s[seq - 1], observed_s, log.watched, seq)
        seen[seq] = min(255, seen[seq] + 1)
    _count_lost(ledger, counts, verdict)
    for reasons in rejected:
        verdict.rejected_rows += 1
        verdict.rejected.update(set(reasons))
    return verdict


def _record(
    recorder: Recorder,
    row: StoredFix,
    published_s: float,
    observed_s: float | None,
    watched: bytearray,
    seq: int,
) -> None:
    at_s = row.received_at.timestamp()
    recorder.latency("publish_to_received", at_s, (at_s - published_s) * 1000.0)
    recorder.count("received", at_s)
    if observed_s is not None and not watched[seq]:
        watched[seq] = 1
        recorder.latency("publish_to_stored", observed_s, (observed_s - published_s) * 1000.0)
        recorder.count("stored", observed_s)


def _key(ledger: Ledger, row: StoredFix) -> tuple[str, int] | None:
    match = _NAME.search(row.device_id)
    if match is None or match.group(1) not in ledger.devices:
        return None
    name = match.group(1)
    seq = row.seq
    if seq is None:
        seq = ledger.seq_by_ts_s.get((name, math.floor(row.ts.timestamp())))
    if seq is None or not 1 <= seq <= ledger.devices[name].last_seq:
        return None
    return name, seq


def _count_lost(ledger: Ledger, counts: dict[str, bytearray], verdict: Verdict) -> None:
    for name, log in ledger.devices.items():
        seen = counts[name]
        for seq in range(1, log.last_seq + 1):
            if not seen[seq] and seq not in log.bad:
                verdict.lost += 1
                if len(verdict.lost_sample) < _SAMPLE:
                    verdict.lost_sample.append(f"{log.device_id}#{seq}")
