"""Assembling a month's report from what `store.reports` read (pure): each officer's figures, the ranking,
the grid and station totals. Definitions are in the README ("Monthly workload and performance")."""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import shapely

from dispatch.reports import models as m
from dispatch.reports.maths import distance_m, inside_s, percentile, usable
from dispatch.reports.months import Month
from dispatch.reports.spans import intersect, length_s, on_duty
from schemas.tables.incidents import PRIORITIES
from store.reports import (
    Engagement,
    GridShape,
    Held,
    MonthData,
    Officer,
    RollCallResult,
    StatusChange,
    UnitFixes,
)

_ROLLCALL_COUNTS = {
    "present": "present",
    "present_out_of_grid": "present",
    "late": "late",
    "silent": "silent",
    "answered_without_fix": "without_fix",
}
_NONE, _NO_INTS = np.zeros(0), np.zeros(0, dtype=np.int64)
_NO_FIXES = UnitFixes(_NONE, _NONE, _NONE, _NONE, _NO_INTS)


@dataclass(frozen=True)
class ReportRules:
    """The settings a report follows (from the station's configuration)."""

    timezone: str = "UTC"
    checkin_early_s: float = 900.0  # a check-in counts from this long before its assignment starts
    checkin_late_after_s: float = 300.0  # a first check-in later than this after the start is late
    fusion_window_s: float = 15.0  # the one line through a unit's devices (geo.track.OneLine)
    max_gap_s: float = 300.0  # a fix stands for where the unit is at most this long


@dataclass
class _Held:
    """One assignment's share of the month: its grid, duty hours held, inside, its check-in verdict."""

    grid_id: str
    unit_id: str
    assigned_s: float
    inside_s: float
    checkin: str | None


@dataclass
class _Parts:
    """The rows of one officer."""

    engagements: list[Engagement] = field(default_factory=list)
    changes: list[StatusChange] = field(default_factory=list)
    held: list[Held] = field(default_factory=list)
    rollcalls: list[RollCallResult] = field(default_factory=list)


def rfc3339(epoch_s: float) -> str:
    """Epoch seconds as RFC 3339 UTC (`…Z`)."""
    return datetime.fromtimestamp(epoch_s, UTC).isoformat().replace("+00:00", "Z")


def build_report(
    data: MonthData, fixes: dict[str, UnitFixes], rules: ReportRules, month: Month, as_of_s: float
) -> m.MonthlyReport:
    """The report of `month` from its rows, counted up to `as_of_s` (the month's end once it is over)."""
    as_of = min(as_of_s, data.end_s)
    shapes = _shapes_by_grid(data.grids)
    parts: dict[str, _Parts] = defaultdict(_Parts)
    for e in data.engagements:
        parts[e.unit_id].engagements.append(e)
    for c in data.changes:
        parts[c.unit_id].changes.append(c)
    for h in data.held:
        parts[h.unit_id].held.append(h)
    for r in data.rollcalls:
        parts[r.unit_id].rollcalls.append(r)
    officers, held = [], []
    for o in data.officers:
        row, assignments = _officer(o, data, parts[o.id], fixes.get(o.id, _NO_FIXES), shapes, rules, as_of)
        officers.append(row)
        held.extend(assignments)
    ranked = sorted(officers, key=_rank_key)
    for n, row in enumerate(ranked, start=1):
        row.rank = n
    return m.MonthlyReport(
        month=month.label,
        timezone=rules.timezone,
        start=rfc3339(data.start_s),
        end=rfc3339(data.end_s),
        as_of=rfc3339(as_of),
        complete=as_of >= data.end_s,
        officers=ranked,
        grids=_grids(data, held, shapes),
        station=_station(data, ranked, held),
    )


def _rank_key(row: m.Officer) -> tuple[int, bool, float, str]:
    p50 = row.responses.call_to_on_scene.p50_s
    return (-row.incidents_total, p50 is None, p50 or 0.0, row.unit_id)


def _officer(
    o: Officer,
    data: MonthData,
    parts: _Parts,
    fixes: UnitFixes,
    shapes: dict[str, list[GridShape]],
    rules: ReportRules,
    as_of: float,
) -> tuple[m.Officer, list[_Held]]:
    duty = on_duty(data.status_before.get(o.id, o.status), parts.changes, data.start_s, as_of)
    line = usable(fixes, rules.fusion_window_s)
    times = data.checkins.get(o.id, [])
    held = []
    for a in parts.held:
        windows = intersect(duty, [(max(a.starts_at_s, data.start_s), min(a.until_s, as_of))])
        shape = _shape_at(shapes.get(a.grid_id, []), a.starts_at_s)
        inside = inside_s(line, windows, shape.geometry, rules.max_gap_s) if shape is not None else 0.0
        # A check-in made while the unit still held an earlier assignment was that one's.
        before = max((b.until_s for b in parts.held if b.starts_at_s < a.starts_at_s), default=-math.inf)
        in_month = data.start_s <= a.starts_at_s < data.end_s
        verdict = _checkin(a, times, rules, as_of, not_before_s=before) if in_month else None
        held.append(_Held(a.grid_id, o.id, length_s(windows), inside, verdict))
    by_priority = _by_priority(e.priority for e in parts.engagements)
    scores = [e.score for e in parts.engagements if e.score is not None]
    assigned = sum(h.assigned_s for h in held)
    row = m.Officer(
        rank=0,
        unit_id=o.id,
        name=o.name,
        kind=o.kind,
        incidents=by_priority,
        incidents_total=sum(by_priority.values()),
        offers=_offers(data.offers, [o.id]),
        responses=_responses(parts.engagements),
        distance_m=round(distance_m(line, duty), 1),
        duty_hours=_hours(length_s(duty)),
        assigned_duty_hours=_hours(assigned),
        inside_grid_share=_share(sum(h.inside_s for h in held), assigned),
        checkins=_checkins(held),
        rollcalls=_rollcalls(parts.rollcalls),
        evaluations=len(scores),
        mean_score=_mean(scores),
        feedback=sum(1 for e in parts.engagements if e.feedback),
    )
    return row, held


def _checkin(
    a: Held, times: Sequence[float], rules: ReportRules, as_of: float, *, not_before_s: float
) -> str | None:
    """on_time, late, missing; None while it is not yet due (the month still running). Only check-ins from
    `checkin_early_s` before the start, and not before `not_before_s` (the unit's previous assignment's
    end), count."""
    i = bisect.bisect_left(times, max(a.starts_at_s - rules.checkin_early_s, not_before_s))
    due = a.starts_at_s + rules.checkin_late_after_s
    if i < len(times) and times[i] < a.until_s and times[i] <= as_of:
        return "on_time" if times[i] <= due else "late"
    return "missing" if as_of >= due else None


def _hours(seconds: float) -> float:
    return round(seconds / 3600.0, 4)


def _share(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole > 0 else None


def _mean(values: Sequence[int]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


def _by_priority(priorities: Iterable[str]) -> dict[str, int]:
    counts = dict.fromkeys(PRIORITIES, 0)
    for p in priorities:
        counts[p] += 1
    return counts


def _offers(offers: dict[tuple[str, str], int], unit_ids: Iterable[str]) -> m.Offers:
    ids = list(unit_ids)
    total = {s: sum(offers.get((u, s), 0) for u in ids) for s in ("accepted", "declined", "timed_out")}
    return m.Offers(**total)


def _interval(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round(end - start, 3)


def _summary(values: list[float | None]) -> m.Responses:
    known = [v for v in values if v is not None]
    return m.Responses(len(known), percentile(known, 50), percentile(known, 90))


def _responses(engagements: Sequence[Engagement]) -> m.ResponseFigures:
    return m.ResponseFigures(
        dispatch_to_en_route=_summary([_interval(e.assigned_at_s, e.en_route_at_s) for e in engagements]),
        en_route_to_on_scene=_summary([_interval(e.en_route_at_s, e.on_scene_at_s) for e in engagements]),
        call_to_on_scene=_summary([_interval(e.reported_at_s, e.on_scene_at_s) for e in engagements]),
    )


def _checkins(held: Iterable[_Held]) -> m.Checkins:
    counts = m.Checkins()
    for h in held:
        if h.checkin is not None:
            setattr(counts, h.checkin, getattr(counts, h.checkin) + 1)
    return counts


def _rollcalls(results: Iterable[RollCallResult]) -> m.RollCalls:
    counts = m.RollCalls()
    for r in results:
        name = _ROLLCALL_COUNTS.get(r.result or "")
        if name is not None:
            setattr(counts, name, getattr(counts, name) + 1)
    return counts


def _shapes_by_grid(grids: Iterable[GridShape]) -> dict[str, list[GridShape]]:
    found: dict[str, list[GridShape]] = defaultdict(list)
    for g in grids:
        found[g.id].append(g)
    return found


def _shape_at(versions: Sequence[GridShape], at_s: float) -> GridShape | None:
    """The version valid at `at_s`; else the first one after it (a grid drawn after the assignment was
    made); else the last."""
    for g in versions:
        if g.valid_from_s <= at_s and (g.valid_to_s is None or at_s < g.valid_to_s):
            return g
    later = [g for g in versions if g.valid_from_s > at_s]
    return later[0] if later else (versions[-1] if versions else None)


def _grids(data: MonthData, held: list[_Held], shapes: dict[str, list[GridShape]]) -> list[m.Grid]:
    rows = []
    by_grid: dict[str, list[_Held]] = defaultdict(list)
    for h in held:
        by_grid[h.grid_id].append(h)
    called: dict[str | None, list[RollCallResult]] = defaultdict(list)
    for r in data.rollcalls:
        called[r.grid_id].append(r)
    lon = np.array([i.lon for i in data.incidents])
    lat = np.array([i.lat for i in data.incidents])
    for grid_id in sorted(by_grid):
        mine = by_grid[grid_id]
        shape = _shape_at(shapes.get(grid_id, []), data.end_s)
        reported = _by_priority([])
        if shape is not None and data.incidents:
            inside = shapely.intersects_xy(shape.geometry, lon, lat)
            reported = _by_priority(
                i.priority for i, k in zip(data.incidents, inside.tolist(), strict=True) if k
            )
        assigned = sum(h.assigned_s for h in mine)
        rows.append(
            m.Grid(
                grid_id=grid_id,
                name=shape.name if shape is not None else grid_id,
                level=shape.level if shape is not None else "",
                incidents_reported=reported,
                holders=len({h.unit_id for h in mine}),
                assigned_duty_hours=_hours(assigned),
                inside_grid_share=_share(sum(h.inside_s for h in mine), assigned),
                checkins=_checkins(mine),
                rollcalls=_rollcalls(called[grid_id]),
            )
        )
    return rows


def _station(data: MonthData, officers: list[m.Officer], held: list[_Held]) -> m.Station:
    """Officers' figures summed; an incident several officers handled counts once, as do its reviews."""
    ids = {o.id for o in data.officers}
    mine = [e for e in data.engagements if e.unit_id in ids]
    once = {e.incident_id: e for e in mine}.values()
    scores = [e.score for e in once if e.score is not None]
    by_priority = _by_priority(e.priority for e in once)
    assigned = sum(h.assigned_s for h in held)
    return m.Station(
        officers=len(officers),
        incidents=by_priority,
        incidents_total=sum(by_priority.values()),
        offers=_offers(data.offers, sorted(ids)),
        responses=_responses(mine),
        distance_m=round(sum(o.distance_m for o in officers), 1),
        duty_hours=round(sum(o.duty_hours for o in officers), 4),
        assigned_duty_hours=_hours(assigned),
        inside_grid_share=_share(sum(h.inside_s for h in held), assigned),
        checkins=_checkins(held),
        rollcalls=_rollcalls(r for r in data.rollcalls if r.unit_id in ids),
        evaluations=len(scores),
        mean_score=_mean(scores),
        feedback=sum(1 for e in once if e.feedback),
    )
