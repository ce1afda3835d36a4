"""The monthly report for 500 officers, against the naive per-officer build, in the same run.

Target: ≤ 10 s on PostgreSQL.

    .venv/bin/python benchmarks/bench_monthly.py [--officers 500] [--interval 60] [--naive-sample 0]

Starts its own PostgreSQL with PostGIS (tests.support.services.PgCluster), migrates it, and stores a month
(November 2026, UTC) of a station: `--officers` police officers each holding their own grid (0.01° squares
over San Francisco) for an 8-hour shift on about 22 days of the month (three shift times), with a status
history (on duty, a half-hour break, off duty), a check-in per shift (some late, some missing), a roll call
a day, a fix every `--interval` seconds of every shift (1 % flagged impossible speed), and ~6 incidents per
officer with offers (some declined or timed out), engagements, evaluations and feedback. Then:

- outpost: `dispatch.reports.service.generate` (a dozen set-based queries for the whole station, every
  officer's fixes in one binary read, vectorised arithmetic);
- naive: what one would write first: per officer, the existing per-unit reads (`registry.status_history`,
  the unit's assignments, `attendance.list_checkins`, its engagements, offers and roll calls, its track
  page by page with `store.tracks.track_page`), then a Python loop over its fixes (distance leg by leg,
  shapely point-in-polygon fix by fix). With `--naive-sample N` only N officers are built and the time is
  scaled to all of them (printed as such).

Prints both times, the ratio naive/outpost, a check that both agree on the officers built by both, and a
last JSON line. OUTPOST_BENCH_QUICK=1: 60 officers.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shapely.geometry import MultiPolygon, Point, box
from sqlalchemy import Engine, insert, select, text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dispatch.reports.assemble import ReportRules  # noqa: E402
from dispatch.reports.maths import NOT_MOVEMENT, percentile  # noqa: E402
from dispatch.reports.months import Month  # noqa: E402
from dispatch.reports.service import generate  # noqa: E402
from dispatch.reports.spans import intersect, length_s, on_duty  # noqa: E402
from geo.distance import haversine_m  # noqa: E402
from geo.track import TrackPoint, follow_best_device  # noqa: E402
from store import attendance, grids, registry  # noqa: E402
from store.attendance.records import assignments, checkins, rollcall_units_table, rollcalls  # noqa: E402
from store.engine import open_engine  # noqa: E402
from store.incidents.rows import EVALUATIONS, FEEDBACK, INCIDENTS, OFFERS, UNITS  # noqa: E402
from store.migrate import migrate  # noqa: E402
from store.reports.records import StatusChange, status_history  # noqa: E402
from store.settings import StoreSettings  # noqa: E402
from store.tracks import Cursor, TrackQuery, track_page  # noqa: E402
from tests.support.services import PgCluster  # noqa: E402

MONTH = Month(2026, 11)
START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 12, 1, tzinfo=UTC)
NOW_S = datetime(2026, 12, 2, 9, tzinfo=UTC).timestamp()
RULES = ReportRules(timezone="UTC")
SHIFT_S = 8 * 3600


def _officer(k: int) -> str:
    return f"o{k:04d}"


def _square(k: int) -> tuple[float, float]:
    return -122.52 + (k % 25) * 0.01, 37.70 + (k // 25) * 0.01


def _shifts(k: int) -> list[datetime]:
    """The starts of officer k's shifts: ~22 days of the month, at 06:00, 14:00 or 22:00."""
    hour = 6 + (k % 3) * 8
    return [START + timedelta(days=d, hours=hour) for d in range(30) if (d + k) % 4 != 0]


def populate(engine: Engine, officers: int, interval_s: int) -> dict[str, int]:
    """The month of the station (see the module docstring); what was stored, by kind."""
    before = START - timedelta(days=30)
    registry.insert_units_bulk(
        engine,
        [
            {"id": _officer(k), "name": f"Officer {k}", "kind": "police", "created_at": before}
            for k in range(officers)
        ],
    )
    police: dict[str, Any] = {"level": "police", "parent_id": None, "now": before}
    for k in range(officers):
        x, y = _square(k)
        beat = MultiPolygon([box(x, y, x + 0.01, y + 0.01)])
        grids.create_grid(engine, grid_id=f"police-{k}", name=f"Beat {k}", geometry=beat, **police)
    held, changes, checked, shifts = [], [], [], []
    for k in range(officers):
        unit = _officer(k)
        for n, start in enumerate(_shifts(k)):
            end = start + timedelta(seconds=SHIFT_S)
            shifts.append((unit, k, start))
            held.append(
                {
                    "unit_id": unit,
                    "grid_id": f"police-{k}",
                    "starts_at": start,
                    "ends_at": end,
                    "created_by": "b",
                }
            )
            breaks = start + timedelta(hours=4)
            for at, a, b in (
                (start, "off_duty", "available"),
                (breaks, "available", "break"),
                (breaks + timedelta(minutes=30), "break", "available"),
                (end, "available", "off_duty"),
            ):
                changes.append({"unit_id": unit, "from_status": a, "to_status": b, "at": at, "actor": "b"})
            if (n + k) % 9 != 0:  # some never check in
                late = 2 if (n + k) % 5 else 12  # minutes: every fifth is late
                checked.append(_checkin(unit, k, n, start + timedelta(minutes=late)))
    with engine.begin() as conn:
        conn.execute(insert(assignments), held)
        conn.execute(insert(status_history), changes)
        conn.execute(insert(checkins), checked)
    rolls = _rollcalls(engine, officers)
    fixes = _fixes(engine, shifts, interval_s)
    found = _incidents(engine, shifts)
    return {
        "assignments": len(held),
        "status_changes": len(changes),
        "checkins": len(checked),
        "rollcall_units": rolls,
        "fixes": fixes,
        **found,
    }


def _checkin(unit: str, k: int, n: int, at: datetime) -> dict[str, Any]:
    x, y = _square(k)
    return {
        "device_id": f"dev-{unit}",
        "checkin_id": f"c{n}",
        "unit_id": unit,
        "grid_id": f"police-{k}",
        "at": at,
        "fix_ts": at,
        "lon": x + 0.005,
        "lat": y + 0.005,
        "accuracy_m": 5.0,
        "distance_m": 0.0,
        "accepted": True,
        "reasons": [],
        "source": "device",
    }


def _rollcalls(engine: Engine, officers: int) -> int:
    results = ("present", "present", "present", "late", "silent", "present_out_of_grid")
    rows = 0
    with engine.begin() as conn:
        for d in range(30):
            at = START + timedelta(days=d, hours=12)
            rid = f"roll-{d}"
            conn.execute(
                insert(rollcalls).values(
                    id=rid,
                    started_at=at,
                    deadline_at=at + timedelta(minutes=2),
                    scope={"kind": "on_duty"},
                    started_by="b",
                    state="closed",
                    closed_at=at + timedelta(minutes=3),
                )
            )
            called = [
                {
                    "rollcall_id": rid,
                    "unit_id": _officer(k),
                    "grid_id": f"police-{k}",
                    "devices": [],
                    "result": results[(d + k) % 6],
                }
                for k in range(officers)
                if k % 3 == 0
            ]
            conn.execute(insert(rollcall_units_table), called)
            rows += len(called)
    return rows


def _fixes(engine: Engine, shifts: list[tuple[str, int, datetime]], interval_s: int) -> int:
    """A fix every `interval_s` of every shift, generated by PostgreSQL (a wander around the grid's
    centre that leaves it now and then); 1 % flagged impossible speed."""
    per_shift = SHIFT_S // interval_s
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TEMP TABLE bench_shifts"
                " (unit_id text, k int, starts_at timestamptz, x float8, y float8)"
            )
        )
        conn.execute(
            text("INSERT INTO bench_shifts VALUES (:u, :k, :s, :x, :y)"),
            [
                {"u": u, "k": k, "s": s, "x": _square(k)[0] + 0.005, "y": _square(k)[1] + 0.005}
                for u, k, s in shifts
            ],
        )
        conn.execute(
            text(
                "INSERT INTO fixes (device_id, unit_id, ts, received_at, lon, lat, accuracy_m, flags)"
                " SELECT 'dev-' || unit_id, unit_id, starts_at + n * make_interval(secs => :step),"
                " starts_at + n * make_interval(secs => :step),"
                " x + 0.0062 * sin(n / 37.0 + k), y + 0.0045 * cos(n / 53.0 + k), 5.0,"
                " CASE WHEN (n + k) % 100 = 0 THEN 2 ELSE 0 END"
                " FROM bench_shifts, generate_series(0, :last) AS n"
            ),
            {"step": interval_s, "last": per_shift - 1},
        )
        conn.execute(text("ANALYZE fixes"))
    return len(shifts) * per_shift


def _incidents(engine: Engine, shifts: list[tuple[str, int, datetime]]) -> dict[str, int]:
    """About one incident in four shifts per officer... ~6 a month, each offered (some declined or timed
    out first), accepted, most reaching the scene; half evaluated, a third with feedback."""
    rows: dict[str, list[dict[str, Any]]] = {"i": [], "o": [], "u": [], "e": [], "f": []}
    for n, (unit, k, start) in enumerate(shifts):
        if n % 4 != 0:
            continue
        iid = f"inc-{n}"
        reported = start + timedelta(hours=1, minutes=n % 50)
        x, y = _square(k)
        rows["i"].append(
            {
                "id": iid,
                "state": "closed",
                "priority": f"P{1 + n % 4}",
                "category": "disturbance",
                "source": "call",
                "lon": x + 0.004,
                "lat": y + 0.006,
                "tier": 0,
                "tier_entered_at": reported,
                "created_by": "b",
                "reported_at": reported,
                "version": 1,
            }
        )
        accepted_at = reported + timedelta(seconds=30 + n % 90)
        if n % 5 == 0:
            rows["o"].append(_offer(f"{iid}-x", iid, 1, unit, reported, "timed_out" if n % 2 else "declined"))
        rows["o"].append(_offer(f"{iid}-a", iid, 2, unit, accepted_at - timedelta(seconds=20), "accepted"))
        en_route = accepted_at + timedelta(seconds=60 + n % 120)
        on_scene = en_route + timedelta(seconds=180 + n % 600) if n % 7 else None
        rows["u"].append(
            {
                "incident_id": iid,
                "unit_id": unit,
                "offer_id": f"{iid}-a",
                "slot": "any",
                "state": "released",
                "assigned_at": accepted_at,
                "en_route_at": en_route,
                "on_scene_at": on_scene,
                "released_at": en_route + timedelta(hours=1),
                "release_reason": "resolved",
            }
        )
        if n % 2 == 0:
            rows["e"].append(
                {
                    "incident_id": iid,
                    "score": 1 + n % 5,
                    "evaluator": "s",
                    "recorded_by": "b",
                    "at": on_scene or en_route,
                }
            )
        if n % 3 == 0:
            rows["f"].append(
                {"incident_id": iid, "outcome": "ok", "officer": unit, "recorded_by": "b", "at": en_route}
            )
    with engine.begin() as conn:
        for table, key in (
            (INCIDENTS, "i"),
            (OFFERS, "o"),
            (UNITS, "u"),
            (EVALUATIONS, "e"),
            (FEEDBACK, "f"),
        ):
            conn.execute(insert(table), rows[key])
    return {"incidents": len(rows["i"]), "offers": len(rows["o"])}


def _offer(oid: str, iid: str, n: int, unit: str, at: datetime, state: str) -> dict[str, Any]:
    return {
        "id": oid,
        "incident_id": iid,
        "n": n,
        "unit_id": unit,
        "slot": "any",
        "state": state,
        "automatic": True,
        "offered_by": "b",
        "offered_at": at,
        "expires_at": at + timedelta(seconds=60),
        "answered_by": "b",
        "answered_at": at + timedelta(seconds=10),
    }


def naive_officer(engine: Engine, unit: str, rules: ReportRules) -> dict[str, Any]:
    """One officer's figures the first way one would write them: per-unit reads, a loop over every fix."""
    start_s, end_s = START.timestamp(), END.timestamp()
    earlier = registry.status_history(engine, unit, end=START, limit=100_000)
    changes = registry.status_history(engine, unit, start=START, end=END, limit=100_000)
    at_start = earlier[-1].to_status if earlier else (changes[0].from_status if changes else "off_duty")
    duty = on_duty(
        at_start,
        [StatusChange(unit, c.at.timestamp(), c.from_status, c.to_status) for c in changes],
        start_s,
        end_s,
    )
    points: list[TrackPoint] = []
    cursor: Cursor | None = None
    while True:
        page, cursor = track_page(engine, TrackQuery(START, END, unit_id=unit), cursor, 5000)
        points.extend(p for p in page if not p.flags & NOT_MOVEMENT)
        if cursor is None:
            break
    points = follow_best_device(points, rules.fusion_window_s)
    distance = 0.0
    for p, q in itertools.pairwise(points):
        if _on(p.ts_s, duty) and _on(q.ts_s, duty):
            distance += haversine_m(p.lon, p.lat, q.lon, q.lat)
    with engine.connect() as conn:
        held = list(conn.execute(select(assignments).where(assignments.c.unit_id == unit)))
        engaged = list(
            conn.execute(
                select(UNITS, INCIDENTS.c.priority, INCIDENTS.c.reported_at)
                .join(INCIDENTS, INCIDENTS.c.id == UNITS.c.incident_id)
                .where(UNITS.c.unit_id == unit, UNITS.c.assigned_at >= START, UNITS.c.assigned_at < END)
            )
        )
        offers = list(
            conn.execute(select(OFFERS).where(OFFERS.c.unit_id == unit, OFFERS.c.offered_at >= START))
        )
        answered = list(
            conn.execute(select(rollcall_units_table).where(rollcall_units_table.c.unit_id == unit))
        )
    assigned = inside = 0.0
    for a in held:
        until = (a.ended_at or a.ends_at).timestamp()
        windows = intersect(duty, [(max(a.starts_at.timestamp(), start_s), min(until, end_s))])
        assigned += length_s(windows)
        grid = grids.get_grid(engine, a.grid_id, at=a.starts_at)
        assert grid is not None
        for here, after in zip(points, [*points[1:], None], strict=True):
            hold_end = min(after.ts_s if after else math.inf, here.ts_s + rules.max_gap_s)
            if grid.geometry.intersects(Point(here.lon, here.lat)):
                inside += length_s(intersect(windows, [(here.ts_s, hold_end)]))
    checked = attendance.list_checkins(
        engine, unit_id=unit, start=START - timedelta(hours=1), accepted=True, limit=100_000
    )
    calls = [
        e.on_scene_at.timestamp() - e.reported_at.timestamp() for e in engaged if e.on_scene_at is not None
    ]
    return {
        "duty_hours": round(length_s(duty) / 3600, 4),
        "distance_m": round(distance, 1),
        "inside_grid_share": round(inside / assigned, 4) if assigned else None,
        "incidents_total": len(engaged),
        "call_p50": percentile(calls, 50),
        "offers": len(offers),
        "checkins": len(checked),
        "rollcalls": len(answered),
    }


def _on(ts_s: float, spans: list[tuple[float, float]]) -> bool:
    return any(a <= ts_s < b for a, b in spans)


def _arguments() -> argparse.Namespace:
    quick = os.environ.get("OUTPOST_BENCH_QUICK") == "1"
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for flag, default, meaning in (
        ("--officers", 60 if quick else 500, "officers of the station"),
        ("--interval", 60, "seconds between an officer's fixes"),
        ("--naive-sample", 0, "officers the naive build covers (0: all)"),
    ):
        parser.add_argument(flag, type=int, default=default, help=meaning)
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    cluster = PgCluster().start()
    cluster.psql("CREATE DATABASE bench")
    engine = open_engine(cluster.url("bench"), pool_size=2)
    try:
        migrate(engine, StoreSettings(database_url=cluster.url("bench")))
        began = time.perf_counter()
        stored = populate(engine, args.officers, args.interval)
        print(
            f"stored in {time.perf_counter() - began:.1f} s: "
            + ", ".join(f"{v:,} {k}" for k, v in stored.items())
        )
        generate(engine, MONTH, RULES, NOW_S)  # warm-up (caches, plans)
        began = time.perf_counter()
        report = generate(engine, MONTH, RULES, NOW_S)
        outpost_s = time.perf_counter() - began
        sample = args.naive_sample or args.officers
        began = time.perf_counter()
        naive = {u: naive_officer(engine, u, RULES) for u in (_officer(k) for k in range(sample))}
        naive_s = (time.perf_counter() - began) * args.officers / sample
    finally:
        engine.dispose()
        cluster.close()
    by_id = {o.unit_id: o for o in report.officers}
    agree = sum(
        1
        for u, n in naive.items()
        if (by_id[u].duty_hours, by_id[u].distance_m, by_id[u].inside_grid_share, by_id[u].incidents_total)
        == (n["duty_hours"], n["distance_m"], n["inside_grid_share"], n["incidents_total"])
    )
    scaled = "" if sample == args.officers else f" (measured on {sample}, scaled to {args.officers})"
    print(f"outpost: {outpost_s:.2f} s for {len(report.officers)} officers (target ≤ 10 s)")
    print(f"naive:   {naive_s:.2f} s{scaled}")
    print(f"ratio naive/outpost: {naive_s / outpost_s:.1f}x; both agree on {agree} of {len(naive)} officers")
    figures = {
        "bench": "monthly",
        "officers": len(report.officers),
        "fixes": stored["fixes"],
        "outpost_s": round(outpost_s, 3),
        "naive_s": round(naive_s, 3),
        "naive_sample": sample,
        "ratio": round(naive_s / outpost_s, 2),
        "agree": agree,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
