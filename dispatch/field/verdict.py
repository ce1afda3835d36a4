"""Whether a check-in holds, with every reason it does not: pure, no I/O (the desk gathers the evidence).

A check-in holds when its fix is fresh, accurate enough, not mocked, and inside the unit's assigned grid
(within the tolerance), while the assignment is on (from `checkin_early_s` before its start until its end).
Every reason that applies is given, so an officer can fix them all at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from dispatch.settings import FieldSettings

NO_FIX = "no_fix"
FIX_NOT_FRESH = "fix_not_fresh"
LOW_ACCURACY = "low_accuracy"
MOCK_LOCATION = "mock_location"
OUTSIDE_SHIFT = "outside_shift"
GRID_UNKNOWN = "grid_unknown"
OUTSIDE_GRID = "outside_grid"
CHECKIN_REASONS = (
    NO_FIX,
    FIX_NOT_FRESH,
    LOW_ACCURACY,
    MOCK_LOCATION,
    OUTSIDE_SHIFT,
    GRID_UNKNOWN,
    OUTSIDE_GRID,
)


@dataclass(frozen=True, slots=True)
class Position:
    """The fix a check-in is judged by: carried in the message, or the device's latest."""

    lon: float
    lat: float
    ts_s: float
    accuracy_m: float | None
    mock: bool


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the desk found: the fix, whether an assignment is on, and how far outside its grid the fix is."""

    now_s: float
    position: Position | None
    on_assignment: bool  # an assignment of the unit is on (or starts within checkin_early_s)
    grid_known: bool  # its grid is a current grid
    distance_m: float | None  # from the fix to the grid (0 inside); None: no fix or no grid


def reasons(e: Evidence, settings: FieldSettings) -> tuple[str, ...]:
    """Every reason the check-in fails; empty when it holds."""
    found: list[str] = []
    p = e.position
    if p is None:
        found.append(NO_FIX)
    else:
        if abs(e.now_s - p.ts_s) > settings.checkin_max_fix_age_s:
            found.append(FIX_NOT_FRESH)
        if p.accuracy_m is None or p.accuracy_m > settings.checkin_max_accuracy_m:
            found.append(LOW_ACCURACY)
        if p.mock:
            found.append(MOCK_LOCATION)
    if not e.on_assignment:
        found.append(OUTSIDE_SHIFT)
    elif not e.grid_known:
        found.append(GRID_UNKNOWN)
    elif e.distance_m is not None and e.distance_m > settings.checkin_tolerance_m:
        found.append(OUTSIDE_GRID)
    return tuple(found)


def explain(found: tuple[str, ...], settings: FieldSettings, distance_m: float | None) -> str:
    """One sentence for the officer."""
    if not found:
        return "checked in"
    words = {
        NO_FIX: "no fix: wait for a position or send one",
        FIX_NOT_FRESH: f"the fix is older than {settings.checkin_max_fix_age_s:g} s",
        LOW_ACCURACY: f"the fix is not within {settings.checkin_max_accuracy_m:g} m accuracy",
        MOCK_LOCATION: "the location is mocked",
        OUTSIDE_SHIFT: "no assignment of the unit is on now",
        GRID_UNKNOWN: "the assigned grid is not a current grid",
        OUTSIDE_GRID: f"{distance_m or 0:.0f} m outside the assigned grid "
        f"(tolerance {settings.checkin_tolerance_m:g} m)",
    }
    return "; ".join(words[r] for r in found)
