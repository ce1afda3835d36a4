"""The monthly report's figures, each checked against the hand-made November of tests/store/test_reports.py
(worked out by hand in the comments), on both stores; the pure parts (months, on-duty spans, percentiles,
time inside a grid) on their own; the same report from PostgreSQL and SQLite; stored, answered again the
same, regenerated; the automatic run; CSV and HTML."""

from __future__ import annotations

import csv
import io
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import msgspec
import numpy as np
import pytest
from shapely.geometry import box
from sqlalchemy import Engine

from dispatch.reports.assemble import ReportRules, _checkin
from dispatch.reports.formats import columns, render_csv
from dispatch.reports.html import render_html
from dispatch.reports.maths import inside_s, percentile
from dispatch.reports.models import MonthlyReportOut
from dispatch.reports.months import Month, due_month
from dispatch.reports.service import FutureMonth, monthly_report, run_due
from dispatch.reports.spans import intersect, on_duty
from store import reports
from store.engine import open_engine
from store.reports import StatusChange, UnitFixes
from store.reports.records import Held
from tests.store import test_reports as month_fixture
from tests.store.test_reports import NOW, at, seed_month

seeded = month_fixture.seeded  # the seeded November, on each store
NOVEMBER = Month(2026, 11)
RULES = ReportRules(timezone="UTC", checkin_early_s=900, checkin_late_after_s=300, max_gap_s=600)
LEG_SHORT_M = 111.1908462655958  # 0.001° of longitude at latitude 0.5° (haversine, R = 6,371,008.8 m)
LEG_LONG_M = 110857.27362029049  # 0.997° of longitude there (0.503° → 1.5°)


def _report(engine: Engine) -> MonthlyReportOut:
    return monthly_report(engine, NOVEMBER, RULES, now_s=NOW.timestamp(), trigger="cli")


def test_every_officer_figure_matches_the_hand_count(seeded: Engine) -> None:
    report = _report(seeded)
    by_id = {o.unit_id: o for o in report.officers}
    p1 = by_id["p1"]
    # Handled: I1 (P1), I2 (P3), I3 (P2); I4 was in October.
    assert (p1.incidents, p1.incidents_total) == ({"P1": 1, "P2": 1, "P3": 1, "P4": 0}, 3)
    # Offers: accepted I1, I2 (the second offer), I3; one of I2 timed out.
    assert msgspec.to_builtins(p1.offers) == {"accepted": 3, "declined": 0, "timed_out": 1}
    r = p1.responses
    # accepted → left: I1 09:01→09:03 = 120 s, I2 10:03→10:04 = 60 s (I3 never left): P50 60, P90 120.
    assert (r.dispatch_to_en_route.count, r.dispatch_to_en_route.p50_s, r.dispatch_to_en_route.p90_s) == (
        2,
        60,
        120,
    )
    # left → arrived: I1 09:03→09:10 = 420 s, I2 10:04→10:20 = 960 s.
    assert (r.en_route_to_on_scene.count, r.en_route_to_on_scene.p50_s, r.en_route_to_on_scene.p90_s) == (
        2,
        420,
        960,
    )
    # reported → arrived: I1 09:00→09:10 = 600 s, I2 10:00→10:20 = 1200 s.
    assert (r.call_to_on_scene.count, r.call_to_on_scene.p50_s, r.call_to_on_scene.p90_s) == (2, 600, 1200)
    # Legs on duty between usable fixes: three of 0.001° (the 08:30 jump left out, 08:20→08:40 one leg)
    # and two of 0.997° (out to police-2 and back); the 17:00 fix is off duty.
    assert p1.distance_m == round(3 * LEG_SHORT_M + 2 * LEG_LONG_M, 1) == 222048.1
    # 2 Nov 08:00–16:00 (the break counts) + 3 Nov 08:00–10:00 and 11:00–12:00 (out of service does not).
    assert (p1.duty_hours, p1.assigned_duty_hours) == (11.0, 11.0)
    # Inside police-1: the fixes at 08:00, 08:10, 08:20, 08:40 and 09:10 each stand for 600 s (the next
    # fix, or max_gap_s), the 09:00 one lies in police-2: 3,000 s of 39,600 s of assigned duty.
    assert p1.inside_grid_share == round(3000 / 39600, 4) == 0.0758
    # 2 Nov: checked in at 08:03 (≤ 5 min): on time; 3 Nov: refused at 08:01, accepted at 08:10: late.
    assert msgspec.to_builtins(p1.checkins) == {"on_time": 1, "late": 1, "missing": 0}
    assert msgspec.to_builtins(p1.rollcalls) == {"present": 1, "late": 1, "silent": 0, "without_fix": 0}
    # I1 scored 4, I2 scored 2; feedback on I1 only.
    assert (p1.evaluations, p1.mean_score, p1.feedback) == (2, 3.0, 1)

    a1 = by_id["a1"]
    assert (a1.incidents_total, a1.offers.accepted, a1.duty_hours, a1.assigned_duty_hours) == (1, 1, 0.0, 0.0)
    assert a1.responses.dispatch_to_en_route.count == 0  # arrived without ever reporting en route
    assert (a1.responses.call_to_on_scene.p50_s, a1.responses.call_to_on_scene.p90_s) == (720, 720)
    assert a1.inside_grid_share is None  # never on duty while assigned
    assert msgspec.to_builtins(a1.checkins) == {"on_time": 0, "late": 0, "missing": 1}
    assert a1.rollcalls.silent == 1
    assert (a1.evaluations, a1.mean_score, a1.feedback) == (1, 4.0, 1)

    p2 = by_id["p2"]
    # On duty since October: 1 Nov 00:00–02:00, inside its (October) assignment, with no fix: 0 inside.
    assert (p2.duty_hours, p2.assigned_duty_hours, p2.inside_grid_share) == (2.0, 2.0, 0.0)
    assert msgspec.to_builtins(p2.checkins) == {"on_time": 0, "late": 0, "missing": 0}  # began in October
    assert (p2.offers.declined, p2.incidents_total, p2.distance_m) == (1, 0, 0.0)
    assert by_id["a2"].duty_hours == 0.0


def test_the_ranking_and_the_station_and_grid_totals(seeded: Engine) -> None:
    report = _report(seeded)
    # Most incidents first (p1 3, a1 1), then fastest P50 call → on scene, none last, then the unit id.
    assert [(o.rank, o.unit_id) for o in report.officers] == [(1, "p1"), (2, "a1"), (3, "a2"), (4, "p2")]
    s = report.station
    assert s is not None
    assert (s.officers, s.incidents, s.incidents_total) == (
        4,
        {"P1": 1, "P2": 1, "P3": 1, "P4": 0},
        3,
    )  # I1 once
    assert msgspec.to_builtins(s.offers) == {"accepted": 4, "declined": 1, "timed_out": 1}
    # Pooled call → on scene: 600, 720, 1200: P50 the 2nd, P90 the 3rd.
    assert (s.responses.call_to_on_scene.p50_s, s.responses.call_to_on_scene.p90_s) == (720, 1200)
    assert (s.responses.dispatch_to_en_route.p50_s, s.responses.en_route_to_on_scene.p90_s) == (60, 960)
    assert (s.distance_m, s.duty_hours, s.assigned_duty_hours) == (222048.1, 13.0, 13.0)
    assert s.inside_grid_share == round(3000 / 46800, 4) == 0.0641
    assert msgspec.to_builtins(s.checkins) == {"on_time": 1, "late": 1, "missing": 1}
    assert msgspec.to_builtins(s.rollcalls) == {"present": 1, "late": 1, "silent": 1, "without_fix": 0}
    assert (s.evaluations, s.mean_score, s.feedback) == (2, 3.0, 1)  # I1 (4) and I2 (2), each once

    grids = {g.grid_id: g for g in report.grids}
    assert sorted(grids) == ["community-1", "police-1", "police-2"]
    p1 = grids["police-1"]
    assert (p1.incidents_reported, p1.holders, p1.assigned_duty_hours, p1.inside_grid_share) == (
        {"P1": 1, "P2": 1, "P3": 0, "P4": 0},
        1,
        11.0,
        0.0758,
    )
    assert (p1.checkins.on_time, p1.checkins.late, p1.rollcalls.present, p1.rollcalls.late) == (1, 1, 1, 1)
    p2 = grids["police-2"]
    assert (p2.incidents_reported["P3"], p2.assigned_duty_hours, p2.inside_grid_share) == (1, 2.0, 0.0)
    c1 = grids["community-1"]
    assert (c1.inside_grid_share, c1.checkins.missing, c1.rollcalls.silent) == (None, 1, 1)
    assert report.complete and report.start == "2026-11-01T00:00:00Z" and report.end == "2026-12-01T00:00:00Z"


def test_both_stores_give_the_same_report(pg_url: str, sqlite_url: str) -> None:
    bodies = []
    for url in (pg_url, sqlite_url):
        engine = open_engine(url, pool_size=2)
        seed_month(engine)
        bodies.append(msgspec.to_builtins(_report(engine)))
        engine.dispose()
    assert bodies[0] == bodies[1]


def test_stored_once_answered_the_same_and_regenerated(seeded: Engine) -> None:
    first = _report(seeded)
    assert reports.stored_months(seeded) == ["2026-11"]
    later = monthly_report(seeded, NOVEMBER, RULES, now_s=NOW.timestamp() + 86400, trigger="api")
    assert msgspec.json.encode(later) == msgspec.json.encode(first)  # the stored report, as generated
    again = monthly_report(
        seeded, NOVEMBER, RULES, now_s=NOW.timestamp() + 86400, trigger="api", regenerate=True
    )
    assert (again.trigger, again.generated_at) == ("api", "2026-12-03T09:00:00Z")
    assert msgspec.to_builtins(again.officers) == msgspec.to_builtins(first.officers)


def test_the_running_month_is_live_and_a_future_month_is_refused(seeded: Engine) -> None:
    running = monthly_report(seeded, NOVEMBER, RULES, now_s=at(2, 10).timestamp(), trigger="api")
    assert not running.complete and running.as_of == "2026-11-02T10:00:00Z"
    assert {o.unit_id: o.duty_hours for o in running.officers}["p1"] == 2.0  # 08:00 to now
    assert reports.stored_months(seeded) == []  # never stored
    with pytest.raises(FutureMonth, match="2026-12 has not begun"):
        monthly_report(seeded, Month(2026, 12), RULES, now_s=at(30, 23).timestamp(), trigger="api")


def test_the_automatic_run_reports_the_month_before_once_from_its_hour(seeded: Engine) -> None:
    assert run_due(seeded, RULES, at(1, 1, 59, month=12).timestamp()) is None  # before 02:00 on the 1st
    assert run_due(seeded, RULES, at(1, 2, 0, month=12).timestamp()) == "2026-11"
    stored = reports.get_report(seeded, "2026-11")
    assert stored is not None and stored.trigger == "auto"
    assert run_due(seeded, RULES, at(1, 3, 0, month=12).timestamp()) is None  # stored: nothing to do
    reports.set_schedule(seeded, enabled=False, hour=2, by="admin", now=NOW)
    assert run_due(seeded, RULES, at(1, 2, month=1).timestamp() + 31 * 86400) is None  # turned off


def test_months_in_station_time() -> None:
    la = ZoneInfo("America/Los_Angeles")
    assert Month.parse("2026-11").bounds(la) == (
        at(1, 7).timestamp(),  # PDT until 1 Nov 02:00 local
        at(1, 8, month=12).timestamp(),  # PST
    )
    assert (Month(2026, 12).following(), Month(2027, 1).preceding()) == (Month(2027, 1), Month(2026, 12))
    for bad in ("2026-13", "11-2026", "2026-1", ""):
        with pytest.raises(ValueError, match="YYYY-MM"):
            Month.parse(bad)
    assert due_month(at(1, 1, month=12).timestamp(), ZoneInfo("UTC"), 2) is None
    assert due_month(at(5, 0, month=12).timestamp(), ZoneInfo("UTC"), 2) == NOVEMBER  # caught up later


def test_pure_parts() -> None:
    assert (percentile([10, 20, 30, 40], 50), percentile([10, 20, 30, 40], 90), percentile([], 50)) == (
        20,
        40,
        None,
    )
    changes = [
        StatusChange("u", 10.0, "off_duty", "available"),
        StatusChange("u", 20.0, "available", "break"),
        StatusChange("u", 30.0, "break", "out_of_service"),
        StatusChange("u", 40.0, "out_of_service", "busy"),
    ]
    assert on_duty("off_duty", changes, 0.0, 100.0) == [(10.0, 30.0), (40.0, 100.0)]
    assert on_duty("available", [], 0.0, 100.0) == [(0.0, 100.0)]
    assert intersect([(0.0, 10.0), (20.0, 30.0)], [(5.0, 25.0)]) == [(5.0, 10.0), (20.0, 25.0)]
    fixes = UnitFixes(
        np.array([0.0, 50.0, 400.0]),
        np.array([0.5, 1.5, 0.5]),
        np.array([0.5, 0.5, 0.5]),
        np.full(3, 5.0),
        np.zeros(3, dtype=np.int64),
    )
    # 0–50 inside, 50–400 outside, 400–(400+100) inside; the window cuts at 450.
    assert inside_s(fixes, [(0.0, 450.0)], box(0, 0, 1, 1), 100.0) == 100.0


def test_csv_and_html_carry_every_officer(seeded: Engine) -> None:
    report = _report(seeded)
    rows = list(csv.reader(io.StringIO(render_csv(report).decode())))
    assert rows[0] == columns()
    assert [r[1] for r in rows[1:]] == ["p1", "a1", "a2", "p2", "station"]
    p1 = dict(zip(rows[0], rows[1], strict=True))
    assert (p1["incidents_total"], p1["call_to_on_scene_p50_s"], p1["inside_grid_share"]) == (
        "3",
        "600.0",
        "0.0758",
    )
    page = render_html(report)
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert page.count("<svg") == 4
    svg = page[page.index("<svg") : page.index("</svg>") + 6]
    ElementTree.fromstring(svg)  # well-formed


def test_a_check_in_for_the_previous_assignment_does_not_count_for_the_next() -> None:
    """Shift A ends at 08:00, shift B starts at 08:10: a check-in at 07:58 was A's, so B's is missing."""
    h = 3600.0
    a, b = Held(1, "p1", "g1", 0.0, 8 * h), Held(2, "p1", "g1", 8 * h + 600, 16 * h)
    rules, late = ReportRules(), 24 * h
    assert _checkin(b, [8 * h - 120], rules, late, not_before_s=a.until_s) == "missing"
    assert _checkin(b, [8 * h - 120], rules, late, not_before_s=-1.0) == "on_time"  # once counted for B
    assert _checkin(b, [8 * h + 500], rules, late, not_before_s=a.until_s) == "on_time"
