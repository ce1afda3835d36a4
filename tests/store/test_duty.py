"""Shifts and assignments in the store, the same on PostgreSQL/PostGIS and SQLite: the seed's rules (kind
matches level, one holder per grid, one grid per unit), replacing with history, reads at an instant, the
roster checked whole and imported all or nothing."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, text

from store import duty
from store.duty import edits as duty_edits
from store.engine import open_engine
from tests.support.duty import seed

T0 = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.fixture
def engine(store_url: str) -> Any:
    engine = open_engine(store_url, pool_size=2)
    seed(engine, T0 - 24 * H)
    yield engine
    engine.dispose()


def _assign(engine: Engine, unit: str, grid: str, start: datetime, end: datetime, **kw: Any) -> duty.Made:
    return duty.create_assignment(
        engine, unit_id=unit, grid_id=grid, starts_at=start, ends_at=end, actor="test", now=T0, **kw
    )


def test_one_holder_per_grid_and_one_grid_per_unit(engine: Engine) -> None:
    first = _assign(engine, "p1", "police-1", T0, T0 + 8 * H).assignment
    with pytest.raises(duty.AssignmentConflict) as grid_taken:
        _assign(engine, "p2", "police-1", T0 + 7 * H, T0 + 9 * H)
    assert grid_taken.value.field == "body.grid_id"
    assert [(c.rule, c.holder.id) for c in grid_taken.value.clashes] == [("grid", first.id)]
    assert "grid police-1 is held by unit p1" in grid_taken.value.message
    with pytest.raises(duty.AssignmentConflict) as unit_busy:
        _assign(engine, "p1", "police-2", T0 + 1 * H, T0 + 2 * H)
    assert (
        unit_busy.value.field == "body.unit_id" and "unit p1 holds grid police-1" in unit_busy.value.message
    )
    # Half-open: the next holder may start the instant the first ends.
    after = _assign(engine, "p2", "police-1", T0 + 8 * H, T0 + 16 * H).assignment
    assert [a.unit_id for a in duty.assignments_at(engine, T0 + 8 * H - timedelta(microseconds=1))] == ["p1"]
    assert [a.id for a in duty.assignments_at(engine, T0 + 8 * H)] == [after.id]
    # Levels are independent: an auxiliary holds the community grid inside police-1 meanwhile.
    _assign(engine, "a1", "community-1", T0, T0 + 8 * H)
    at = duty.assignments_at(engine, T0 + H)
    assert [(a.grid_id, a.unit_id) for a in at] == [("community-1", "a1"), ("police-1", "p1")]
    assert [a.unit_id for a in duty.assignments_at(engine, T0 + H, grid_id="community-1")] == ["a1"]
    assert [a.grid_id for a in duty.assignments_at(engine, T0 + H, unit_id="p1")] == ["police-1"]


def test_kind_must_match_level_and_vehicles_hold_no_grid(engine: Engine) -> None:
    cases = [
        ("p1", "community-1", "body.grid_id", "community grid community-1 takes an auxiliary"),
        ("a1", "police-1", "body.grid_id", "police grid police-1 takes a police officer"),
        ("v1", "police-1", "body.grid_id", "unit v1 is a vehicle"),
        ("nobody", "police-1", "body.unit_id", "no unit nobody"),
        ("p1", "police-9", "body.grid_id", "no current grid police-9"),
    ]
    for unit, grid, field, words in cases:
        with pytest.raises(duty.DutyError) as err:
            _assign(engine, unit, grid, T0, T0 + H)
        assert err.value.field == field and words in err.value.message, (unit, grid, err.value.message)
    with pytest.raises(duty.DutyError) as inverted:
        _assign(engine, "p1", "police-1", T0, T0)
    assert inverted.value.field == "body.ends_at"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM assignments")).scalar() == 0


def test_replace_ends_the_holders_at_the_new_start_with_history(engine: Engine) -> None:
    held = _assign(engine, "p1", "police-1", T0, T0 + 8 * H).assignment
    other = _assign(engine, "p2", "police-2", T0, T0 + 8 * H).assignment
    # p2 takes police-1 from 12:00: p1 leaves police-1 and p2 leaves police-2 at 12:00.
    made = _assign(engine, "p2", "police-1", T0 + 4 * H, T0 + 8 * H, replace=True)
    assert {a.id for a in made.replaced} == {held.id, other.id}
    for ended in made.replaced:
        assert ended.ended_at == T0 + 4 * H and ended.ends_at == T0 + 8 * H
        assert ended.replaced_by == made.assignment.id and ended.ended_by == "test"
    assert [(a.grid_id, a.unit_id) for a in duty.assignments_at(engine, T0 + 3 * H)] == [
        ("police-1", "p1"),
        ("police-2", "p2"),
    ]
    assert [(a.grid_id, a.unit_id) for a in duty.assignments_at(engine, T0 + 5 * H)] == [("police-1", "p2")]
    # A replaced assignment that had not begun never begins, and never clashes again.
    later = _assign(engine, "p1", "police-2", T0 + 10 * H, T0 + 12 * H).assignment
    _assign(engine, "p2", "police-2", T0 + 9 * H, T0 + 13 * H, replace=True)
    with engine.connect() as conn:
        row = conn.execute(text(f"SELECT ended_at, starts_at FROM assignments WHERE id = {later.id}")).one()
    assert row[0] == row[1]
    _assign(engine, "p1", "police-2", T0 + 14 * H, T0 + 15 * H)


def test_ending_an_assignment_and_shifts(engine: Engine) -> None:
    shift = duty.create_shift(engine, name="day", starts_at=T0, ends_at=T0 + 8 * H, now=T0)
    assert duty.list_shifts(engine, start=T0 + H, end=T0 + 2 * H) == [shift]
    assert duty.list_shifts(engine, start=T0 + 8 * H, end=T0 + 9 * H) == []
    assert duty.get_shift(engine, shift.id) == shift
    made = duty.create_assignment(
        engine, unit_id="p1", grid_id="police-1", shift_id=shift.id, actor="t", now=T0
    )
    assert (made.assignment.starts_at, made.assignment.ends_at) == (T0, T0 + 8 * H)
    with pytest.raises(duty.DutyError) as outside:
        duty.create_assignment(
            engine, unit_id="p2", grid_id="police-2", shift_id=shift.id, ends_at=T0 + 9 * H, actor="t", now=T0
        )
    assert outside.value.field == "body.ends_at"
    ended = duty.end_assignment(engine, made.assignment.id, actor="d", now=T0 + 2 * H)
    assert ended.until == T0 + 2 * H and ended.ended_by == "d"
    with pytest.raises(duty.DutyConflict):
        duty.end_assignment(engine, made.assignment.id, actor="d", now=T0 + 3 * H)
    with pytest.raises(duty.DutyNotFound):
        duty.end_assignment(engine, 999_999, actor="d", now=T0)
    assert duty.assignments_at(engine, T0 + 3 * H) == []


ROSTER = """date,shift,start,end,unit_id,grid_id
2026-12-01,day,07:00,15:00,p1,police-1
2026-12-01,day,07:00,15:00,a1,community-1
# nights cross midnight
2026-12-01,night,22:00,06:00,p2,police-1

2026-12-02,day,07:00,15:00,p1,police-1
"""


def test_the_roster_imports_in_local_time_once(engine: Engine) -> None:
    zone = ZoneInfo("America/Los_Angeles")
    lines, problems = duty.parse_roster(ROSTER, zone)
    assert problems == [] and [ln.line for ln in lines] == [2, 3, 5, 7]
    assert lines[0].starts_at == datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # 07:00 PST
    assert lines[2].ends_at == datetime(2026, 12, 2, 14, 0, tzinfo=UTC)  # 06:00 the next morning
    report = duty.import_roster(engine, lines, actor="roster", now=T0)
    assert (report.created, report.unchanged, report.shifts_created) == (4, 0, 3)
    again = duty.import_roster(engine, lines, actor="roster", now=T0)
    assert (again.created, again.unchanged, again.shifts_created) == (0, 4, 0)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM assignments")).scalar() == 4
        assert conn.execute(text("SELECT count(*) FROM shifts")).scalar() == 3


def test_a_roster_with_conflicts_reports_every_one_and_imports_nothing(engine: Engine) -> None:
    _assign(
        engine, "p2", "police-2", datetime(2026, 12, 3, 8, tzinfo=UTC), datetime(2026, 12, 3, 9, tzinfo=UTC)
    )
    bad = ROSTER + "\n".join(
        [
            "2026-12-02,late,14:00,18:00,p2,police-1",  # 8: police-1 held by p1 until 15:00 (line 7)
            "2026-12-03,day,07:00,15:00,p2,police-2",  # 9: the stored assignment
            "2026-12-03,day,07:00,15:00,a2,police-2",  # 10: an auxiliary on a police grid (and grid taken)
            "2026-12-03,day,07:00,15:00,v1,police-1",  # 11: a vehicle
            "2026-12-03,day,07:00,15:00,zz,police-1",  # 12: no such unit
            "2026-12-04,day,7 am,15:00,p1,police-1",  # 13: bad time
            "2026-13-04,day,07:00,15:00,p1,police-1",  # 14: bad date
            "2026-12-05,day,07:00,15:00,p1",  # 15: too few columns
            "2026-12-05,day,07:00,15:00,p1,police-7",  # 16: no such grid
            "9999-12-31,night,22:00,06:00,p1,police-1",  # 17: off the calendar
        ]
    )
    lines, problems = duty.parse_roster(bad, ZoneInfo("UTC"))
    with pytest.raises(duty.RosterRejected) as rejected:
        duty.import_roster(engine, lines, problems=problems, actor="roster", now=T0)
    said = [str(p) for p in rejected.value.problems]
    assert [p.line for p in rejected.value.problems] == [8, 9, 10, 11, 12, 13, 14, 15, 16, 17], said
    assert said[0] == "line 8: grid police-1 is held then by unit p1 (line 7)"
    assert said[1].startswith("line 9: grid police-2 is held by unit p2 from 2026-12-03T08:00:00+00:00")
    assert "unit a2 is an auxiliary" in said[2] and "unit v1 is a vehicle" in said[3]
    assert said[4] == "line 12: unit_id: no unit zz" and "start: must be HH:MM" in said[5]
    assert "date: must be YYYY-MM-DD" in said[6] and "has 5 columns" in said[7]
    assert said[8] == "line 16: grid_id: no current grid police-7"
    assert said[9] == "line 17: date: too near the end of the calendar"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM assignments")).scalar() == 1
        assert conn.execute(text("SELECT count(*) FROM shifts")).scalar() == 0


def test_roster_times_across_a_clock_change() -> None:
    zone = ZoneInfo("America/Los_Angeles")
    gap = "date,shift,start,end,unit_id,grid_id\n2026-03-08,night,02:30,07:00,p1,police-1\n"
    assert [str(p) for p in duty.parse_roster(gap, zone)[1]] == [
        "line 2: 02:30 does not exist on 2026-03-08 in America/Los_Angeles (a clock change)"
    ]
    back = "date,shift,start,end,unit_id,grid_id\n2026-11-01,night,00:00,06:00,p1,police-1\n"
    (line,), _ = duty.parse_roster(back, zone)
    assert line.ends_at - line.starts_at == 7 * H  # the night the clocks go back is an hour longer
    (header,) = duty.parse_roster("unit,grid\np1,police-1\n", zone)[1]
    assert str(header).startswith("line 1: the header must name the columns date,shift,start,end,unit_id")


@pytest.mark.parametrize("locked", [True, False], ids=["locked", "unlocked"])
def test_racing_writers_leave_one_holder(
    engine: Engine, locked: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not locked:
        # Negative control: without the lock, racing writers can both find the grid free.
        monkeypatch.setattr(duty_edits, "lock", lambda conn: None)
    barrier = threading.Barrier(6)

    def attempt(n: int) -> str:
        barrier.wait()
        try:
            _assign(engine, ("p1", "p2")[n % 2], "police-1", T0 + n * timedelta(seconds=1), T0 + 8 * H)
        except duty.AssignmentConflict:
            return "conflict"
        return "made"

    for _ in range(3 if locked else 10):
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM assignments"))
        with ThreadPoolExecutor(6) as pool:
            outcomes = list(pool.map(attempt, range(6)))
        held = duty.assignments_at(engine, T0 + 7 * H, grid_id="police-1")
        if locked:
            assert sorted(outcomes) == ["conflict"] * 5 + ["made"] and len(held) == 1
        elif len(held) > 1:
            return  # the control saw the race
    if not locked:
        pytest.xfail("the race did not show in 10 rounds (timing): the control could not see it this time")


def test_a_line_added_to_an_imported_roster_is_one_conflict_not_two(engine: Engine) -> None:
    lines, _ = duty.parse_roster(ROSTER, ZoneInfo("UTC"))
    duty.import_roster(engine, lines, actor="roster", now=T0)
    grown, _ = duty.parse_roster(ROSTER + "2026-12-01,late,10:00,12:00,p2,police-1\n", ZoneInfo("UTC"))
    with pytest.raises(duty.RosterRejected) as rejected:
        duty.import_roster(engine, grown, actor="roster", now=T0)
    assert [str(p) for p in rejected.value.problems] == [
        "line 8: grid police-1 is held then by unit p1 (line 2)"
    ]
