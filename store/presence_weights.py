"""Patrol presence as arithmetic (pure, no I/O): how many on-duty seconds a unit spent in each cell per hour.

A fix stands for where the unit was from its time until the unit's next fix (whichever device sent it), but
never longer than `max_gap_s`: a unit silent for an hour was not an hour where it last reported. Only the
part of that interval while the unit was on duty counts (its status at each instant from the status
history; `NOT_ON_DUTY` statuses do not count), and only inside the range asked for. Seconds are split at hour
boundaries so that hours add up exactly: the presence of a range is the sum of its hours' presence.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

HOUR_S = 3600.0
# As the roll call of "everyone on duty" counts them (dispatch.field.rollcall_scope): every other status,
# a break included, is a unit out on patrol.
NOT_ON_DUTY = frozenset({"off_duty", "out_of_service"})


@dataclass(frozen=True, slots=True)
class StatusSpan:
    """The unit's status changes to `status` at `at_s` (epoch seconds)."""

    at_s: float
    status: str


def duty_spans(
    status_at_start: str, changes: Sequence[StatusSpan], start_s: float, end_s: float
) -> list[tuple[float, float]]:
    """The on-duty intervals [a, b) within [start_s, end_s), from the status at `start_s` and the changes
    after it (time-ordered; ones outside the range are ignored)."""
    spans: list[tuple[float, float]] = []
    status, since = status_at_start, start_s
    for change in changes:
        if not start_s < change.at_s < end_s:
            continue
        if status not in NOT_ON_DUTY and change.at_s > since:
            spans.append((since, change.at_s))
        status, since = change.status, change.at_s
    if status not in NOT_ON_DUTY and end_s > since:
        spans.append((since, end_s))
    return _merged(spans)


def _merged(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in spans:
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def presence(
    fixes: Iterable[tuple[float, int]],
    duty: Sequence[tuple[float, float]],
    start_s: float,
    end_s: float,
    max_gap_s: float,
) -> dict[tuple[float, int], float]:
    """{(hour start, cell): on-duty seconds} of one unit in [start_s, end_s), from its time-ordered fixes
    as (epoch seconds, cell); fixes before `start_s` count for what of their interval lies inside."""
    out: dict[tuple[float, int], float] = defaultdict(float)
    previous: tuple[float, int] | None = None
    for fix in fixes:
        if previous is not None:
            _add(out, previous[1], previous[0], min(fix[0], previous[0] + max_gap_s), duty, start_s, end_s)
        previous = fix
    if previous is not None:
        _add(out, previous[1], previous[0], previous[0] + max_gap_s, duty, start_s, end_s)
    return {key: seconds for key, seconds in out.items() if seconds > 0}


def _add(
    out: dict[tuple[float, int], float],
    cell: int,
    a: float,
    b: float,
    duty: Sequence[tuple[float, float]],
    start_s: float,
    end_s: float,
) -> None:
    a, b = max(a, start_s), min(b, end_s)
    if b <= a:
        return
    for on, off in duty:  # a few spans a day: a scan is cheaper than a search
        if off <= a:
            continue
        if on >= b:
            break
        _split_hours(out, cell, max(a, on), min(b, off))


def _split_hours(out: dict[tuple[float, int], float], cell: int, a: float, b: float) -> None:
    while a < b:
        hour = math.floor(a / HOUR_S) * HOUR_S
        until = min(b, hour + HOUR_S)
        out[(hour, cell)] += until - a
        a = until
