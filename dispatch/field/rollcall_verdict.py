"""How a unit ends a roll call: pure, no I/O.

An answer counts only together with a fresh position, a fix newer than the roll call's start. With one
before the deadline the unit is `present` (inside its assigned grid, within the tolerance, or holding no
grid) or `present_out_of_grid`; after the deadline, while late answers still count, `late`. A unit that
answered but sent no fresh fix by the close is `answered_without_fix`; one that did neither, `silent`. A
unit with a device that can only report positions (a radio, a stock OwnTracks phone) answers with a fresh
fix alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from schemas.vocabulary import DEVICE_KINDS

Result = Literal["present", "present_out_of_grid", "late", "answered_without_fix", "silent"]
RESULTS: tuple[Result, ...] = ("present", "present_out_of_grid", "late", "answered_without_fix", "silent")
POSITION_ONLY_KINDS = frozenset({"radio"})
assert set(DEVICE_KINDS) >= POSITION_ONLY_KINDS


def position_only(device_id: str, kind: str) -> bool:
    """Whether the device can only report positions (a radio, or an OwnTracks phone, id "user/device")."""
    return kind in POSITION_ONLY_KINDS or "/" in device_id


def judged(
    *, fix_ts_s: float | None, start_s: float, deadline_s: float, now_s: float, inside: bool
) -> Result | None:
    """The result of a unit that has answered (or needs no answer), given its newest fix; None while it
    has no fresh fix (it may still send one)."""
    if fix_ts_s is None or fix_ts_s <= start_s:
        return None
    if now_s > deadline_s:
        return "late"
    return "present" if inside else "present_out_of_grid"


def at_close(answered: bool) -> Result:
    """The result of a unit still without one when the roll call closes."""
    return "answered_without_fix" if answered else "silent"


def tally(results: Iterable[str | None]) -> dict[str, int]:
    """How many units ended each way, and how many are `pending` (None)."""
    found: dict[str, int] = dict.fromkeys((*RESULTS, "pending"), 0)
    for result in results:
        found[result or "pending"] += 1
    return found
