"""Time spans as sorted lists of disjoint half-open intervals [start, end) in epoch seconds (pure): on-duty
time from a status history, intersections, total length."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from store.reports import StatusChange

Spans = list[tuple[float, float]]

# Every status but these is on duty: `break` is a pause within a shift; `out_of_service` is the
# dispatcher's "not available for any work" (the roll call's scope of "on duty" leaves it out too).
OFF_DUTY = frozenset({"off_duty", "out_of_service"})


def on_duty(status_at_start: str, changes: Iterable[StatusChange], start_s: float, end_s: float) -> Spans:
    """The spans of [start_s, end_s) the unit was on duty, from its status at `start_s` and its changes in
    time order."""
    spans: Spans = []
    since = start_s if status_at_start not in OFF_DUTY else None
    for change in changes:
        if change.at_s >= end_s:
            break
        if change.to_status in OFF_DUTY:
            if since is not None:
                spans.append((since, max(since, change.at_s)))
                since = None
        elif since is None:
            since = max(start_s, change.at_s)
    if since is not None and since < end_s:
        spans.append((since, end_s))
    return [s for s in spans if s[1] > s[0]]


def intersect(a: Sequence[tuple[float, float]], b: Sequence[tuple[float, float]]) -> Spans:
    """The spans in both `a` and `b` (each sorted and disjoint)."""
    out: Spans = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo < hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def length_s(spans: Iterable[tuple[float, float]]) -> float:
    """Their total length in seconds."""
    return sum(end - start for start, end in spans)
