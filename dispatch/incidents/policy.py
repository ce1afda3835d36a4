"""Dispatch policy: which priorities are offered automatically and which units each priority needs (pure)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dispatch.incidents.escalation import PRIORITIES, SlaPolicy, parse_sla
from dispatch.settings import DispatchSettings
from schemas.config import ConfigError
from schemas.vocabulary import UNIT_KINDS

ANY_KIND = "any"


@dataclass(frozen=True)
class DispatchPolicy:
    """The incident loop's rules, parsed once from `DispatchSettings`."""

    settings: DispatchSettings
    auto_priorities: frozenset[str]
    needs: Mapping[str, tuple[str, ...]]  # priority → one kind (or "any") per unit needed
    sla: SlaPolicy

    def needed(self, priority: str) -> tuple[str, ...]:
        """The unit kinds `priority` needs, one entry per unit."""
        return self.needs.get(priority, (ANY_KIND,))

    def automatic(self, priority: str) -> bool:
        """True when policy offers incidents of `priority` without waiting for a dispatcher."""
        return priority in self.auto_priorities


def policy_from(settings: DispatchSettings) -> DispatchPolicy:
    """Parse and check the dispatch settings (ConfigError names the variable)."""
    auto = frozenset(p.strip().upper() for p in settings.auto_dispatch_priorities)
    unknown = auto - set(PRIORITIES)
    if unknown:
        raise ConfigError(f"OUTPOST_AUTO_DISPATCH_PRIORITIES: unknown priority {', '.join(sorted(unknown))}")
    needs: dict[str, tuple[str, ...]] = {}
    for entry in settings.units_needed:
        priority, _, kinds = entry.partition("=")
        priority = priority.strip().upper()
        parsed = tuple(k.strip().lower() for k in kinds.split("+") if k.strip())
        if priority not in PRIORITIES or not parsed or any(k not in (*UNIT_KINDS, ANY_KIND) for k in parsed):
            raise ConfigError(
                f"OUTPOST_UNITS_NEEDED: {entry!r}: expected e.g. P1=police+auxiliary "
                f"(kinds: {', '.join(UNIT_KINDS)}, {ANY_KIND})"
            )
        needs[priority] = parsed
    return DispatchPolicy(settings, auto, needs, parse_sla(settings.sla_s))


def open_slots(needed: Iterable[str], filled: Iterable[str]) -> list[str]:
    """The kinds still needed once `filled` (the slots of accepted units and pending offers) are taken."""
    taken = Counter(filled)
    still_open = []
    for kind in needed:
        if taken[kind] > 0:
            taken[kind] -= 1
        else:
            still_open.append(kind)
    return still_open


def slot_for(kind: str, needed: Iterable[str], filled: Iterable[str]) -> str:
    """The slot a unit of `kind` fills: its own kind if still open, else "any" if open, else "extra"."""
    still_open = open_slots(needed, filled)
    if kind in still_open:
        return kind
    if ANY_KIND in still_open:
        return ANY_KIND
    return "extra"
