"""Out of grid: an on-duty unit outside its assigned grid, beyond a tolerance, for longer than a dwell.

Pure: the caller says, at an instant of its clock, which grid the unit holds, its status and how far
outside that grid it is, and gets back the alerts raised or cleared. Hysteresis: a unit starts counting as
outside only beyond `tolerance_m`, and stops only once back inside its grid (distance 0), so a unit
wandering along the border, a few metres either side, neither raises nor clears anything. A unit on an
incident (`INCIDENT_STATUSES`) is excused wherever it is, and the reason says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol, TypeVar

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")

# A unit working an incident goes where the incident is.
INCIDENT_STATUSES = frozenset({"assigned", "en_route", "on_scene"})
# Not on duty: nobody expects them anywhere.
OFF_DUTY_STATUSES = frozenset({"off_duty", "out_of_service"})

State = Literal["inside", "near_border", "outside", "out_of_grid", "excused"]


class Alert(NamedTuple):
    """An out-of-grid alert raised or cleared for a unit and the grid it holds."""

    unit_id: str
    grid_id: str
    kind: Literal["raised", "cleared"]
    at_s: float
    distance_m: float | None
    reason: str


@dataclass(slots=True)
class Judgement:
    """Where one unit stands against its grid now."""

    grid_id: str
    state: State
    reason: str
    distance_m: float | None
    outside_since_s: float | None = None
    raised_at_s: float | None = None


class OutOfGrid:
    """Every watched unit's judgement; `judge` moves one on."""

    def __init__(self, tolerance_m: float, dwell_s: float) -> None:
        self.tolerance_m, self.dwell_s = tolerance_m, dwell_s
        self._units: dict[str, Judgement] = {}

    def judgement(self, unit_id: str) -> Judgement | None:
        """The unit's current judgement (None: not watched: no grid held, off duty or no position)."""
        return self._units.get(unit_id)

    def judge(
        self, unit_id: str, now_s: float, *, grid_id: str | None, status: str | None, distance_m: float | None
    ) -> list[Alert]:
        """Take the unit's grid, status and distance outside it (m; None: no position) at `now_s`."""
        j = self._units.get(unit_id)
        alerts: list[Alert] = []
        if j is not None and j.grid_id != grid_id:
            alerts += self._clear(unit_id, j, now_s, "no longer holds the grid")
            j = None
        if grid_id is None or status is None or status in OFF_DUTY_STATUSES or distance_m is None:
            if j is not None:
                why = "no position" if distance_m is None and status else f"status {status}"
                alerts += self._clear(unit_id, j, now_s, why)
            self._units.pop(unit_id, None)
            return alerts
        if j is None:
            j = self._units[unit_id] = Judgement(grid_id, "inside", "inside its grid", distance_m)
        j.distance_m = distance_m
        if status in INCIDENT_STATUSES:
            alerts += self._clear(unit_id, j, now_s, f"on an incident (status {status})")
            j.state, j.reason, j.outside_since_s = "excused", f"on an incident (status {status})", None
            return alerts
        if distance_m <= 0.0:
            alerts += self._clear(unit_id, j, now_s, "back inside its grid")
            j.state, j.reason, j.outside_since_s = "inside", "inside its grid", None
        elif distance_m > self.tolerance_m:
            if j.outside_since_s is None:
                j.outside_since_s = now_s
            if j.raised_at_s is None and now_s - j.outside_since_s >= self.dwell_s:
                j.raised_at_s = now_s
                alerts.append(Alert(unit_id, grid_id, "raised", now_s, distance_m, "outside its grid"))
        if j.raised_at_s is not None:
            j.state, j.reason = "out_of_grid", f"outside its grid since the dwell of {self.dwell_s:g} s"
        elif j.outside_since_s is not None:
            j.state, j.reason = "outside", f"{distance_m:.0f} m outside its grid"
        elif distance_m > 0.0:
            j.state, j.reason = "near_border", f"{distance_m:.0f} m outside, within the tolerance"
        return alerts

    def forget_others(self, keep: set[str], now_s: float) -> list[Alert]:
        """Stop watching every unit not in `keep` (its assignment ended), clearing what was raised."""
        return forget(self._units, keep, lambda u, j: self._clear(u, j, now_s, "no longer holds the grid"))

    def _clear(self, unit_id: str, j: Judgement, now_s: float, reason: str) -> list[Alert]:
        return [Alert(unit_id, j.grid_id, "cleared", now_s, j.distance_m, reason)] if lower(j) else []


def forget(states: dict[K, V], keep: set[K], clear: Callable[[K, V], list[T]]) -> list[T]:
    """Drop every state whose key is not in `keep`; what `clear` says of each one dropped."""
    out: list[T] = []
    for key in [k for k in states if k not in keep]:
        out += clear(key, states.pop(key))
    return out


class _Raisable(Protocol):
    raised_at_s: float | None


def lower(state: _Raisable) -> bool:
    """Lower what was raised; whether it had been (a judgement, a grid's cover)."""
    was = state.raised_at_s is not None
    state.raised_at_s = None
    return was
