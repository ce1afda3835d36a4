"""The reads of a month's report, set-based: one query per kind of row for every officer at once
(PostgreSQL and SQLite alike, the same rows in the same order), so a station of 500 officers costs a
dozen queries, not a dozen per officer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, select

from store.attendance.records import assignments, checkins, rollcall_units_table, rollcalls
from store.grids.records import record as grid_record
from store.grids.records import table as grid_table
from store.incidents.rows import EVALUATIONS, FEEDBACK, INCIDENTS, OFFERS, UNITS
from store.registry.records import units
from store.reports import records as rec
from store.reports.records import status_history
from store.times import as_utc

# Units that are people: a vehicle carries officers, who are counted themselves.
OFFICER_KINDS = ("police", "auxiliary")


def _dt(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def _s(value: datetime | None) -> float | None:
    return None if value is None else as_utc(value).timestamp()


def _epoch(value: datetime) -> float:
    return as_utc(value).timestamp()


def read_month(engine: Engine, start_s: float, end_s: float, *, early_s: float) -> rec.MonthData:
    """Every row the report of [start_s, end_s) needs; check-ins are read from `early_s` before the first
    assignment's start (a check-in counts from that long before its assignment starts)."""
    data = rec.MonthData(start_s, end_s)
    with engine.connect() as conn:
        data.officers = _officers(conn, end_s)
        data.engagements = _engagements(conn, start_s, end_s)
        data.offers = _offers(conn, start_s, end_s)
        data.status_before, data.changes = _statuses(conn, data.officers, start_s, end_s)
        data.held = _held(conn, start_s, end_s)
        data.checkins = _checkins(conn, data.held, early_s)
        data.rollcalls = _rollcalls(conn, start_s, end_s)
        data.incidents = _incidents(conn, start_s, end_s)
        data.grids = _grids(conn, sorted({h.grid_id for h in data.held}))
    return data


def _officers(conn: Connection, end_s: float) -> list[rec.Officer]:
    u = units.c
    query = (
        select(u.id, u.name, u.kind, u.status)
        .where(u.kind.in_(OFFICER_KINDS), u.created_at < _dt(end_s))
        .order_by(u.id)
    )
    return [rec.Officer(*row) for row in conn.execute(query)]


def _engagements(conn: Connection, start_s: float, end_s: float) -> list[rec.Engagement]:
    e, i = UNITS.c, INCIDENTS.c
    query = (
        select(
            e.unit_id,
            e.incident_id,
            i.priority,
            i.reported_at,
            e.assigned_at,
            e.en_route_at,
            e.on_scene_at,
            EVALUATIONS.c.score,
            FEEDBACK.c.incident_id.is_not(None),
        )
        .join(INCIDENTS, i.id == e.incident_id)
        .outerjoin(EVALUATIONS, EVALUATIONS.c.incident_id == e.incident_id)
        .outerjoin(FEEDBACK, FEEDBACK.c.incident_id == e.incident_id)
        .where(e.assigned_at >= _dt(start_s), e.assigned_at < _dt(end_s))
        .order_by(e.unit_id, e.assigned_at, e.incident_id)
    )
    return [
        rec.Engagement(
            unit_id=r[0],
            incident_id=r[1],
            priority=r[2],
            reported_at_s=_epoch(r[3]),
            assigned_at_s=_epoch(r[4]),
            en_route_at_s=_s(r[5]),
            on_scene_at_s=_s(r[6]),
            score=None if r[7] is None else int(r[7]),
            feedback=bool(r[8]),
        )
        for r in conn.execute(query)
    ]


def _offers(conn: Connection, start_s: float, end_s: float) -> dict[tuple[str, str], int]:
    o = OFFERS.c
    query = (
        select(o.unit_id, o.state, func.count())
        .where(o.offered_at >= _dt(start_s), o.offered_at < _dt(end_s))
        .group_by(o.unit_id, o.state)
    )
    return {(r[0], r[1]): int(r[2]) for r in conn.execute(query)}


def _statuses(
    conn: Connection, officers: list[rec.Officer], start_s: float, end_s: float
) -> tuple[dict[str, str], list[rec.StatusChange]]:
    """Each officer's status at the start (the last change before it; else what the first change after it
    changed from; else the status now, unchanged all along) and the month's changes in time order."""
    h = status_history.c
    before = _edge(conn, h.at < _dt(start_s), "to_status", latest=True)
    after = _edge(conn, h.at >= _dt(start_s), "from_status", latest=False)
    status_before = {o.id: before.get(o.id, after.get(o.id, o.status)) for o in officers}
    query = (
        select(h.unit_id, h.at, h.from_status, h.to_status)
        .where(h.at >= _dt(start_s), h.at < _dt(end_s))
        .order_by(h.unit_id, h.at, h.id)
    )
    changes = [rec.StatusChange(r[0], _epoch(r[1]), r[2], r[3]) for r in conn.execute(query)]
    return status_before, changes


def _edge(conn: Connection, where: Any, column: str, *, latest: bool) -> dict[str, str]:
    """Per unit, `column` of its latest (or earliest) change under `where`; of changes at the same
    instant, the last (or first) recorded."""
    h = status_history.c
    pick = func.max if latest else func.min
    edge = select(h.unit_id, pick(h.at).label("at")).where(where).group_by(h.unit_id).subquery()
    query = (
        select(h.unit_id, h[column])
        .join(edge, and_(edge.c.unit_id == h.unit_id, edge.c.at == h.at))
        .order_by(h.unit_id, h.id if latest else h.id.desc())
    )
    return {str(r[0]): str(r[1]) for r in conn.execute(query)}  # the last row of a unit wins


def _until() -> Any:
    a = assignments.c
    return func.coalesce(a.ended_at, a.ends_at)


def _held(conn: Connection, start_s: float, end_s: float) -> list[rec.Held]:
    a = assignments.c
    until = _until()
    query = (
        select(a.id, a.unit_id, a.grid_id, a.starts_at, until)
        .where(a.starts_at < _dt(end_s), until > _dt(start_s), until > a.starts_at)
        .order_by(a.unit_id, a.starts_at, a.id)
    )
    return [rec.Held(int(r[0]), r[1], r[2], _epoch(r[3]), _epoch(r[4])) for r in conn.execute(query)]


def _checkins(conn: Connection, held: list[rec.Held], early_s: float) -> dict[str, list[float]]:
    """Accepted check-ins of the units holding a grid, from `early_s` before the first start to the last
    end, by unit in time order."""
    if not held:
        return {}
    c = checkins.c
    first = min(h.starts_at_s for h in held) - early_s
    last = max(h.until_s for h in held)
    query = (
        select(c.unit_id, c.at)
        .where(c.accepted.is_(True), c.at >= _dt(first), c.at < _dt(last))
        .order_by(c.unit_id, c.at, c.id)
    )
    found: dict[str, list[float]] = {}
    for unit_id, at in conn.execute(query):
        found.setdefault(unit_id, []).append(_epoch(at))
    return found


def _rollcalls(conn: Connection, start_s: float, end_s: float) -> list[rec.RollCallResult]:
    r, u = rollcalls.c, rollcall_units_table.c
    query = (
        select(u.unit_id, u.rollcall_id, r.started_at, u.grid_id, u.result)
        .join(rollcalls, r.id == u.rollcall_id)
        .where(r.started_at >= _dt(start_s), r.started_at < _dt(end_s))
        .order_by(u.unit_id, r.started_at, u.rollcall_id)
    )
    return [rec.RollCallResult(x[0], x[1], _epoch(x[2]), x[3], x[4]) for x in conn.execute(query)]


def _incidents(conn: Connection, start_s: float, end_s: float) -> list[rec.IncidentPlace]:
    i = INCIDENTS.c
    query = (
        select(i.id, i.priority, i.lon, i.lat)
        .where(i.reported_at >= _dt(start_s), i.reported_at < _dt(end_s))
        .order_by(i.id)
    )
    return [rec.IncidentPlace(*row) for row in conn.execute(query)]


def _grids(conn: Connection, grid_ids: list[str]) -> list[rec.GridShape]:
    if not grid_ids:
        return []
    t = grid_table(conn)
    rows = conn.execute(select(t).where(t.c.id.in_(grid_ids)).order_by(t.c.id, t.c.version))
    shapes = []
    for row in rows:
        g = grid_record(row)
        valid_to = None if g.valid_to is None else g.valid_to.timestamp()
        shapes.append(rec.GridShape(g.id, g.name, g.level, g.geometry, g.valid_from.timestamp(), valid_to))
    return shapes
