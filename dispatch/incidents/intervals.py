"""Response intervals of one incident, named as in NFPA 1710 / NFORS (pure).

- processing: reported → dispatched (the first unit accepted the offer)
- turnout: dispatched → en_route (the first unit left)
- travel: en_route → on_scene (the first unit arrived)
- total: reported → on_scene

An interval whose end (or start) was never recorded is None, never guessed: a unit detected on scene
without ever reporting en route has a known total but unknown turnout and travel.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Milestones:
    """When the incident reached each step (epoch seconds), None when it has not."""

    reported_at: float
    dispatched_at: float | None = None
    en_route_at: float | None = None
    on_scene_at: float | None = None


@dataclass(frozen=True)
class Intervals:
    """Seconds between milestones; None when either end is missing."""

    processing_s: float | None
    turnout_s: float | None
    travel_s: float | None
    total_s: float | None

    def as_dict(self) -> dict[str, float | None]:
        """JSON-ready, with the unit in every name."""
        return {
            "processing_s": self.processing_s,
            "turnout_s": self.turnout_s,
            "travel_s": self.travel_s,
            "total_s": self.total_s,
        }


def _between(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round(end - start, 3)


def response_intervals(m: Milestones) -> Intervals:
    """The NFPA/NFORS intervals of `m`."""
    return Intervals(
        processing_s=_between(m.reported_at, m.dispatched_at),
        turnout_s=_between(m.dispatched_at, m.en_route_at),
        travel_s=_between(m.en_route_at, m.on_scene_at),
        total_s=_between(m.reported_at, m.on_scene_at),
    )
