"""Tiered escalation: community grid → police grid → station → command centre, with SLA targets (pure).

Each tier has a service-level target per priority: the incident must have a unit on scene within that long
of entering the tier. A breached target escalates to the next tier, which starts its own target; at the top
tier a breach is recorded and notified (there is nobody above the command centre).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dispatch.incidents.states import TIERS, TOP_TIER, Event, Progress
from schemas.config import ConfigError

PRIORITIES = ("P1", "P2", "P3", "P4")


@dataclass(frozen=True)
class SlaPolicy:
    """Seconds allowed per priority and tier."""

    targets_s: Mapping[str, tuple[float, ...]]

    def target_s(self, priority: str, tier: int) -> float:
        """The target of `priority` at `tier` (the last configured one for higher tiers)."""
        targets = self.targets_s[priority]
        return targets[min(tier, len(targets) - 1)]

    def due_at(self, priority: str, tier: int, entered_at: float) -> float:
        """When an incident that entered `tier` at `entered_at` breaches its target (epoch s)."""
        return entered_at + self.target_s(priority, tier)


def parse_sla(entries: tuple[str, ...]) -> SlaPolicy:
    """Parse `DispatchSettings.sla_s` ("P1=240/300/600/900", ...); every priority must be present."""
    targets: dict[str, tuple[float, ...]] = {}
    for entry in entries:
        priority, _, values = entry.partition("=")
        priority = priority.strip().upper()
        if priority not in PRIORITIES:
            raise ConfigError(
                f"OUTPOST_SLA_S: {entry!r}: the priority must be one of {', '.join(PRIORITIES)}"
            )
        try:
            seconds = tuple(float(v) for v in values.split("/"))
        except ValueError as exc:
            raise ConfigError(
                f"OUTPOST_SLA_S: {entry!r}: expected seconds per tier like P1=240/300/600/900"
            ) from exc
        if not seconds or len(seconds) > len(TIERS) or any(not s > 0 for s in seconds):
            raise ConfigError(
                f"OUTPOST_SLA_S: {entry!r}: give 1 to {len(TIERS)} positive targets, one per tier"
            )
        targets[priority] = seconds
    missing = [p for p in PRIORITIES if p not in targets]
    if missing:
        raise ConfigError(f"OUTPOST_SLA_S: no target for {', '.join(missing)}")
    return SlaPolicy(targets)


def breach_event(progress: Progress) -> Event:
    """What a breached target does: escalate, or, at the top tier, record the breach."""
    return Event.ESCALATE if progress.tier < TOP_TIER else Event.SLA_BREACH


def breach_reason(priority: str, progress: Progress, target_s: float) -> str:
    """The audit trail's words for a breach."""
    return f"SLA breached: {priority} had no unit on scene within {target_s:g} s at {progress.tier_name}"
