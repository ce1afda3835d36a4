"""A month's roster from CSV: every line checked first, then all of it in one transaction, or none of it.

Format (a header row, then one assignment a line; blank lines and lines starting with `#` are skipped):

    date,shift,start,end,unit_id,grid_id
    2026-12-01,day,07:00,15:00,p-101,police-mission
    2026-12-01,night,22:00,06:00,a-7,community-mission

`date` is YYYY-MM-DD; `start` and `end` are HH:MM (or HH:MM:SS) local times in the station's time zone;
an `end` at or before `start` is on the next day. A local time skipped by a daylight-saving change is an
error; one that occurs twice is its first occurrence. Lines of the same date, shift name, start and end
share one shift. A line that is already stored exactly (same unit, grid, start and end) is left as it is,
so importing the same file again adds nothing.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from sqlalchemy import Connection, Engine, select

from store.duty.edits import check_fit, insert_assignment, insert_shift, lock
from store.duty.records import Assignment, DutyError, clashes_of, shifts

COLUMNS = ("date", "shift", "start", "end", "unit_id", "grid_id")
_MAX_FIELD = 200


@dataclass(frozen=True, slots=True)
class RosterLine:
    """One parsed line: unit `unit_id` holds `grid_id` over [starts_at, ends_at) in the named shift."""

    line: int
    shift: str
    starts_at: datetime
    ends_at: datetime
    unit_id: str
    grid_id: str


@dataclass(frozen=True, slots=True)
class LineProblem:
    """What is wrong with one line of the file (line 1 is the header)."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class RosterRejected(DutyError):  # noqa: N818 (reads as a verdict)
    """The roster has problems; nothing was imported."""

    def __init__(self, problems: list[LineProblem]) -> None:
        super().__init__("file", f"{len(problems)} problems")
        self.problems = sorted(problems, key=lambda p: p.line)


@dataclass(frozen=True, slots=True)
class RosterReport:
    """What an import wrote."""

    created: int
    unchanged: int
    shifts_created: int


def _local(day: date, at: time, zone: tzinfo) -> datetime:
    naive = datetime.combine(day, at)
    aware = naive.replace(tzinfo=zone, fold=0)
    if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        raise ValueError(
            f"{at.isoformat('minutes')} does not exist on {day.isoformat()} in {zone} (a clock change)"
        )
    return aware.astimezone(UTC)


def _field(row: dict[str, str], name: str) -> str:
    value = (row.get(name) or "").strip()
    if not value:
        raise ValueError(f"{name}: is empty")
    if len(value) > _MAX_FIELD or not value.isprintable():
        raise ValueError(f"{name}: must be printable and at most {_MAX_FIELD} characters")
    return value


def _line(number: int, row: dict[str, str], zone: tzinfo) -> RosterLine:
    values = {name: _field(row, name) for name in COLUMNS}
    try:
        day = date.fromisoformat(values["date"])
    except ValueError:
        raise ValueError(f"date: must be YYYY-MM-DD, got {values['date'][:40]!r}") from None
    times = {}
    for name in ("start", "end"):
        try:
            times[name] = time.fromisoformat(values[name])
        except ValueError:
            raise ValueError(f"{name}: must be HH:MM, got {values[name][:40]!r}") from None
        if times[name].tzinfo is not None:
            raise ValueError(f"{name}: a local time without an offset (the zone is --timezone)")
    start = _local(day, times["start"], zone)
    end_day = day + timedelta(days=1) if times["end"] <= times["start"] else day
    end = _local(end_day, times["end"], zone)
    return RosterLine(number, values["shift"], start, end, values["unit_id"], values["grid_id"])


def parse_roster(content: str, zone: tzinfo) -> tuple[list[RosterLine], list[LineProblem]]:
    """The lines of a roster file and the problems of those that cannot be read (local times in `zone`)."""
    rows = list(csv.reader(io.StringIO(content)))
    header = [c.strip().lower() for c in rows[0]] if rows else []
    if sorted(header) != sorted(COLUMNS):
        return [], [LineProblem(1, f"the header must name the columns {','.join(COLUMNS)}, got {header!r}")]
    lines: list[RosterLine] = []
    problems: list[LineProblem] = []
    for number, cells in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
            continue
        if len(cells) != len(header):
            problems.append(LineProblem(number, f"has {len(cells)} columns, the header {len(header)}"))
            continue
        try:
            lines.append(_line(number, dict(zip(header, cells, strict=True)), zone))
        except ValueError as exc:
            problems.append(LineProblem(number, str(exc)))
        except OverflowError:
            problems.append(LineProblem(number, "date: too near the end of the calendar"))
    return lines, problems


def _key(line: RosterLine) -> tuple[str, str, datetime, datetime]:
    return line.unit_id, line.grid_id, line.starts_at, line.ends_at


def _held(held: Assignment) -> tuple[str, str, datetime, datetime]:
    return held.unit_id, held.grid_id, held.starts_at, held.until


def _overlaps_in_file(lines: list[RosterLine]) -> list[LineProblem]:
    """Lines holding a grid, or a unit, that an earlier-starting line of the file holds at the same time."""
    problems = []
    for rule in ("grid", "unit"):
        groups: dict[str, list[RosterLine]] = defaultdict(list)
        for ln in lines:
            groups[ln.grid_id if rule == "grid" else ln.unit_id].append(ln)
        for group in groups.values():
            group.sort(key=lambda ln: (ln.starts_at, ln.line))
            latest = group[0]  # of the lines so far, the one ending last
            for ln in group[1:]:
                if ln.starts_at < latest.ends_at:
                    said = (
                        f"grid {ln.grid_id} is held then by unit {latest.unit_id}"
                        if rule == "grid"
                        else f"unit {ln.unit_id} holds grid {latest.grid_id} then"
                    )
                    problems.append(LineProblem(ln.line, f"{said} (line {latest.line})"))
                if ln.ends_at > latest.ends_at:
                    latest = ln
    return problems


def _check(conn: Connection, lines: list[RosterLine]) -> tuple[list[RosterLine], list[LineProblem]]:
    """The lines to write (those not stored already) and the problems of every line. Overlaps are looked
    for among the lines whose unit may hold their grid (another problem already rules the rest out)."""
    fit, problems = [], []
    for ln in lines:
        try:
            check_fit(conn, ln.unit_id, ln.grid_id)
        except DutyError as exc:
            problems.append(LineProblem(ln.line, f"{exc.field.removeprefix('body.')}: {exc.message}"))
        else:
            fit.append(ln)
    problems.extend(_overlaps_in_file(fit))
    in_file = {_key(ln) for ln in fit}
    fresh = []
    for ln in fit:
        found = clashes_of(conn, unit_id=ln.unit_id, grid_id=ln.grid_id, start=ln.starts_at, end=ln.ends_at)
        if any(_held(c.holder) == _key(ln) for c in found):
            continue
        # A stored assignment that is another line of the file was reported as that line's overlap.
        stored = [c for c in found if _held(c.holder) not in in_file]
        problems.extend(LineProblem(ln.line, c.describe()) for c in stored)
        fresh.append(ln)
    return fresh, problems


ShiftKey = tuple[str, datetime, datetime]


def _shift_id(
    conn: Connection, ln: RosterLine, known: dict[ShiftKey, tuple[int, bool]], now: datetime
) -> int:
    """The id of the line's shift (name, start, end), stored or made now (`known` remembers which)."""
    key = (ln.shift, ln.starts_at, ln.ends_at)
    if key not in known:
        query = select(shifts.c.id).where(
            shifts.c.name == ln.shift, shifts.c.starts_at == ln.starts_at, shifts.c.ends_at == ln.ends_at
        )
        stored = conn.execute(query.order_by(shifts.c.id)).scalar()
        if stored is not None:
            known[key] = (stored, False)
        else:
            made = insert_shift(conn, name=ln.shift, start=ln.starts_at, end=ln.ends_at, now=now)
            known[key] = (made.id, True)
    return known[key][0]


def import_roster(
    engine: Engine,
    lines: list[RosterLine],
    *,
    problems: Sequence[LineProblem] = (),
    actor: str,
    now: datetime,
) -> RosterReport:
    """Check every line against the others and the store, then write them all; `RosterRejected` listing
    every problem (the parse's `problems` too) and nothing written otherwise."""
    with engine.begin() as conn:
        lock(conn)
        fresh, found = _check(conn, lines)
        if problems or found:
            raise RosterRejected([*problems, *found])
        known: dict[ShiftKey, tuple[int, bool]] = {}
        for ln in fresh:
            insert_assignment(
                conn,
                unit_id=ln.unit_id,
                grid_id=ln.grid_id,
                shift_id=_shift_id(conn, ln, known, now),
                start=ln.starts_at,
                end=ln.ends_at,
                actor=actor,
                now=now,
            )
        created_shifts = sum(1 for _, created in known.values() if created)
        return RosterReport(len(fresh), len(lines) - len(fresh), created_shifts)
