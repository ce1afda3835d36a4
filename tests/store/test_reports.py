"""The monthly report's reads on both stores: a hand-made November 2026 (built through the public store
functions) read back the same from PostgreSQL and SQLite, with exactly the rows a report of the month needs;
reports stored once and replaced on regeneration; the schedule's defaults and changes; migration step 10.

`seed_month` is the fixture every report test shares (tests/dispatch/test_reports*.py check each figure of
the report against it by hand)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from schemas.fix import Fix, FixFlag
from store import attendance, duty, incidents, registry, reports
from store.attendance import Called, CheckinDraft
from store.engine import open_engine
from store.fixes import FixWriter
from store.migrate import migrate
from store.settings import StoreSettings
from tests.support.duty import seed

BEFORE = datetime(2026, 10, 1, tzinfo=UTC)  # the units and grids exist from here
NOV_START = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
DEC_START = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)  # when the fixture's month is reported
_ids = (f"id-{n}" for n in itertools.count())


def at(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 11) -> datetime:
    """A time of November 2026 (UTC, the fixture's station time)."""
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


def _status(engine: Engine, unit_id: str, *steps: tuple[datetime, str]) -> None:
    for when, status in steps:
        assert registry.change_unit_status(engine, unit_id, status, actor="test", now=when).written


def _assign(engine: Engine, unit_id: str, grid_id: str, start: datetime, end: datetime) -> None:
    duty.create_assignment(
        engine, unit_id=unit_id, grid_id=grid_id, starts_at=start, ends_at=end, actor="test", now=BEFORE
    )


def _checkin(engine: Engine, unit_id: str, grid_id: str, when: datetime, *, accepted: bool = True) -> None:
    draft = CheckinDraft(
        device_id=f"{unit_id}-phone",
        checkin_id=next(_ids),
        unit_id=unit_id,
        grid_id=grid_id,
        assignment_id=None,
        at=when,
        fix_ts=when,
        lon=0.5,
        lat=0.5,
        accuracy_m=5.0,
        distance_m=0.0,
        accepted=accepted,
        reasons=() if accepted else ("outside_grid",),
        source="device",
    )
    attendance.record_checkin(engine, draft)


def _rollcall(engine: Engine, when: datetime, results: dict[str, tuple[str, str]]) -> None:
    """A roll call at `when`; `results`: unit → (its grid, how it ended)."""
    rollcall_id = next(_ids)
    called = [Called(u, grid, (f"{u}-phone",)) for u, (grid, _) in results.items()]
    attendance.start_rollcall(
        engine,
        rollcall_id=rollcall_id,
        scope={"kind": "on_duty"},
        units=called,
        started_by="test",
        started_at=when,
        deadline_at=when + timedelta(minutes=2),
    )
    for unit_id, (_, result) in results.items():
        attendance.record_result(
            engine, rollcall_id, unit_id, result=result, fix_ts=None, lon=None, lat=None, inside=None
        )


class _Incident:
    """One incident built step by step through store.incidents, as the loop would record it."""

    def __init__(self, engine: Engine, priority: str, reported: datetime, lon: float, lat: float) -> None:
        self.store = incidents.IncidentStore(engine)
        self.id = next(_ids)
        t = reported.timestamp()
        values = {
            "id": self.id,
            "state": "new",
            "priority": priority,
            "category": "disturbance",
            "source": "call",
            "lon": lon,
            "lat": lat,
            "tier": 0,
            "tier_entered_at": t,
            "created_by": "test",
            "reported_at": t,
        }
        self.store.create(values, actor="test", at=t, reason="test")

    def offer(self, unit_id: str, offered: datetime, answer: str, answered: datetime) -> str:
        offer_id = next(_ids)
        t = offered.timestamp()
        with self.store.begin() as conn:
            incidents.insert_offer(
                conn,
                {
                    "id": offer_id,
                    "incident_id": self.id,
                    "unit_id": unit_id,
                    "slot": "any",
                    "state": "pending",
                    "automatic": True,
                    "offered_by": "test",
                    "offered_at": t,
                    "expires_at": t + 60,
                },
            )
            assert incidents.answer_offer(conn, offer_id, answer, by="test", at=answered.timestamp())
        return offer_id

    def engage(
        self,
        unit_id: str,
        offer_id: str,
        assigned: datetime,
        en_route: datetime | None,
        on_scene: datetime | None,
    ) -> None:
        with self.store.begin() as conn:
            incidents.insert_engagement(
                conn,
                {
                    "incident_id": self.id,
                    "unit_id": unit_id,
                    "offer_id": offer_id,
                    "slot": "any",
                    "state": "assigned",
                    "assigned_at": assigned.timestamp(),
                },
            )
            steps: dict[str, Any] = {}
            if en_route is not None:
                steps.update(state="en_route", en_route_at=en_route.timestamp())
            if on_scene is not None:
                steps.update(state="on_scene", on_scene_at=on_scene.timestamp())
            if steps:
                incidents.update_engagement(conn, self.id, unit_id, steps)

    def close(self, when: datetime, *, score: int | None = None, feedback: bool = False) -> None:
        t = when.timestamp()
        with self.store.begin() as conn:
            incidents.release_engagements(conn, self.id, at=t, reason="resolved")
            if feedback:
                incidents.insert_feedback(
                    conn,
                    {"incident_id": self.id, "outcome": "ok", "officer": "p1", "recorded_by": "t", "at": t},
                )
            if score is not None:
                incidents.insert_evaluation(
                    conn,
                    {"incident_id": self.id, "score": score, "evaluator": "s", "recorded_by": "t", "at": t},
                )


# p1's fixes on 2 November: (time, lon, lat, flags). police-1 is the square lon 0–1, lat 0–1; police-2 lon
# 1–2. The 08:30 fix is an impossible jump (flagged) and the 17:00 fix is off duty: neither counts.
P1_FIXES = (
    (at(2, 8, 0), 0.500, 0.5, 0),
    (at(2, 8, 10), 0.501, 0.5, 0),
    (at(2, 8, 20), 0.502, 0.5, 0),
    (at(2, 8, 30), 0.900, 0.9, int(FixFlag.IMPOSSIBLE_SPEED)),
    (at(2, 8, 40), 0.503, 0.5, 0),
    (at(2, 9, 0), 1.500, 0.5, 0),  # in police-2: outside p1's grid
    (at(2, 9, 10), 0.503, 0.5, 0),
    (at(2, 17, 0), 0.600, 0.5, 0),  # off duty
)


def seed_month(engine: Engine) -> None:
    """November 2026 at a small station (UTC): officers p1, p2 (police), auxiliaries a1, a2, vehicle v1;
    what each did is spelled out in tests/dispatch/test_reports.py beside the figures it gives."""
    seed(engine, BEFORE)
    # p1: 2 Nov 08:00–16:00 on duty (a break 12:00–12:30 stays on duty): 8 h; 3 Nov 08:00–12:00 less an
    # hour out of service: 3 h.
    _status(
        engine,
        "p1",
        (at(2, 8), "available"),
        (at(2, 12), "break"),
        (at(2, 12, 30), "available"),
        (at(2, 16), "off_duty"),
        (at(3, 8), "available"),
        (at(3, 10), "out_of_service"),
        (at(3, 11), "available"),
        (at(3, 12), "off_duty"),
    )
    # p2: on duty since 31 October 20:00, off at 02:00 on the 1st: 2 h of November.
    _status(engine, "p2", (at(31, 20, month=10), "available"), (at(1, 2), "off_duty"))
    _assign(engine, "p1", "police-1", at(2, 8), at(2, 16))
    _assign(engine, "p1", "police-1", at(3, 8), at(3, 12))
    _assign(engine, "p2", "police-2", at(31, 20, month=10), at(1, 4))  # began in October
    _assign(engine, "a1", "community-1", at(2, 8), at(2, 16))  # a1 never came on duty
    _checkin(engine, "p1", "police-1", at(2, 8, 3))  # on time (≤ 5 min after the start)
    _checkin(engine, "p1", "police-1", at(3, 8, 1), accepted=False)  # refused: does not count
    _checkin(engine, "p1", "police-1", at(3, 8, 10))  # late
    _rollcall(engine, at(2, 11), {"p1": ("police-1", "present"), "a1": ("community-1", "silent")})
    _rollcall(engine, at(3, 9), {"p1": ("police-1", "late")})
    FixWriter(engine).write(
        [
            Fix(
                device_id="p1-phone",
                unit_id="p1",
                ts=ts,
                received_at=ts,
                lon=x,
                lat=y,
                accuracy_m=5.0,
                flags=f,
            )
            for ts, x, y, f in P1_FIXES
        ]
    )
    _incidents(engine)


def _incidents(engine: Engine) -> None:
    # I1, P1 in police-1, 2 Nov 09:00: p1 and a1 both go.
    i1 = _Incident(engine, "P1", at(2, 9), 0.5, 0.5)
    offer = i1.offer("p1", at(2, 9, 0, 30), "accepted", at(2, 9, 1))
    i1.engage("p1", offer, at(2, 9, 1), at(2, 9, 3), at(2, 9, 10))
    offer = i1.offer("a1", at(2, 9, 0, 30), "accepted", at(2, 9, 2))
    i1.engage("a1", offer, at(2, 9, 2), None, at(2, 9, 12))
    i1.close(at(2, 9, 40), score=4, feedback=True)
    # I2, P3 in police-2, 2 Nov 10:00: p2 declines, p1 lets one offer time out, then accepts another.
    i2 = _Incident(engine, "P3", at(2, 10), 1.5, 0.5)
    i2.offer("p2", at(2, 10, 0, 5), "declined", at(2, 10, 0, 10))
    i2.offer("p1", at(2, 10, 0, 10), "timed_out", at(2, 10, 1, 10))
    offer = i2.offer("p1", at(2, 10, 2), "accepted", at(2, 10, 3))
    i2.engage("p1", offer, at(2, 10, 3), at(2, 10, 4), at(2, 10, 20))
    i2.close(at(2, 11), score=2)
    # I3, P2 in police-1, 3 Nov 08:30: p1 accepts and never gets going (cancelled).
    i3 = _Incident(engine, "P2", at(3, 8, 30), 0.5, 0.5)
    offer = i3.offer("p1", at(3, 8, 30, 30), "accepted", at(3, 8, 31))
    i3.engage("p1", offer, at(3, 8, 31), None, None)
    i3.close(at(3, 9))
    # I4, P4 in October: not November's.
    i4 = _Incident(engine, "P4", at(30, 9, month=10), 0.5, 0.5)
    offer = i4.offer("p1", at(30, 9, month=10), "accepted", at(30, 9, 1, month=10))
    i4.engage("p1", offer, at(30, 9, 1, month=10), at(30, 9, 2, month=10), at(30, 9, 5, month=10))
    i4.close(at(30, 10, month=10), score=5, feedback=True)


@pytest.fixture
def seeded(store_engine: Engine) -> Engine:
    seed_month(store_engine)
    return store_engine


def _read(engine: Engine) -> reports.MonthData:
    return reports.read_month(engine, NOV_START, DEC_START, early_s=900.0)


def test_the_month_reads_exactly_the_rows_of_the_month(seeded: Engine) -> None:
    data = _read(seeded)
    assert [o.id for o in data.officers] == ["a1", "a2", "p1", "p2"]  # people only: no vehicle
    assert data.status_before == {"a1": "off_duty", "a2": "off_duty", "p1": "off_duty", "p2": "available"}
    assert [(c.unit_id, c.to_status) for c in data.changes][:2] == [("p1", "available"), ("p1", "break")]
    assert [c.unit_id for c in data.changes].count("p2") == 1  # October's change is the status before
    assert [(e.unit_id, e.priority) for e in data.engagements] == [
        ("a1", "P1"),
        ("p1", "P1"),
        ("p1", "P3"),
        ("p1", "P2"),
    ]
    assert [(e.score, e.feedback) for e in data.engagements] == [
        (4, True),
        (4, True),
        (2, False),
        (None, False),
    ]
    assert data.offers == {
        ("p1", "accepted"): 3,
        ("p1", "timed_out"): 1,
        ("a1", "accepted"): 1,
        ("p2", "declined"): 1,
    }
    assert [(h.unit_id, h.grid_id) for h in data.held] == [
        ("a1", "community-1"),
        ("p1", "police-1"),
        ("p1", "police-1"),
        ("p2", "police-2"),
    ]
    assert data.checkins == {"p1": [at(2, 8, 3).timestamp(), at(3, 8, 10).timestamp()]}
    assert sorted((r.unit_id, r.result) for r in data.rollcalls) == [
        ("a1", "silent"),
        ("p1", "late"),
        ("p1", "present"),
    ]
    assert sorted(i.priority for i in data.incidents) == ["P1", "P2", "P3"]
    assert sorted({g.id for g in data.grids}) == ["community-1", "police-1", "police-2"]
    fixes = reports.unit_fixes(seeded, ["p1", "p2"], NOV_START, DEC_START)
    assert list(fixes) == ["p1"]
    assert fixes["p1"].ts_s.tolist() == [f[0].timestamp() for f in P1_FIXES]
    usable = reports.unit_fixes(
        seeded, ["p1"], NOV_START, DEC_START, skip_flags=int(FixFlag.IMPOSSIBLE_SPEED)
    )
    assert usable["p1"].ts_s.tolist() == [f[0].timestamp() for f in P1_FIXES if not f[3]]  # the jump left out


def _comparable(data: reports.MonthData) -> dict[str, Any]:
    plain = dict(vars(data))
    plain["grids"] = [
        (g.id, g.name, g.level, g.geometry.wkt, g.valid_from_s, g.valid_to_s) for g in data.grids
    ]
    plain["incidents"] = sorted((i.priority, i.lon, i.lat) for i in data.incidents)  # ids are per store
    plain["engagements"] = [(e.unit_id, e.priority, e.assigned_at_s, e.score) for e in data.engagements]
    plain["rollcalls"] = sorted((r.unit_id, r.started_at_s, r.grid_id, r.result) for r in data.rollcalls)
    plain["held"] = [(h.unit_id, h.grid_id, h.starts_at_s, h.until_s) for h in data.held]
    return plain


def test_both_stores_read_the_same_month(pg_url: str, sqlite_url: str) -> None:
    found = []
    for url in (pg_url, sqlite_url):
        engine = open_engine(url, pool_size=2)
        seed_month(engine)
        data = _read(engine)
        fixes = reports.unit_fixes(engine, [o.id for o in data.officers], NOV_START, DEC_START)
        found.append(
            (
                _comparable(data),
                {u: (f.ts_s.tolist(), f.lon.tolist(), f.devices.tolist()) for u, f in fixes.items()},
            )
        )
        engine.dispose()
    assert found[0] == found[1]


def test_a_report_is_stored_once_and_replaced_only_by_a_regeneration(store_url: str) -> None:
    engine = open_engine(store_url, pool_size=2)
    assert reports.get_report(engine, "2026-11") is None
    first = reports.StoredReport("2026-11", NOW, "auto", {"officers": [1]})
    reports.save_report(engine, first)
    assert reports.get_report(engine, "2026-11") == first
    again = reports.StoredReport("2026-11", NOW + timedelta(days=3), "api", {"officers": [2]})
    late = reports.StoredReport("2026-11", NOW + timedelta(days=1), "api", {"officers": [3]})
    assert (
        reports.save_report(engine, late, replace=False) == first
    )  # a second first request: the first stands
    assert reports.save_report(engine, again) == again
    assert reports.stored_months(engine) == ["2026-11"]
    engine.dispose()


def test_the_schedule_has_defaults_until_changed(store_url: str) -> None:
    engine = open_engine(store_url, pool_size=2)
    assert reports.get_schedule(engine) == reports.Schedule(enabled=True, hour=2)
    changed = reports.set_schedule(engine, enabled=False, hour=6, by="token:1:admin", now=NOW)
    assert (changed.enabled, changed.hour, changed.updated_by, changed.updated_at) == (
        False,
        6,
        "token:1:admin",
        NOW,
    )
    with pytest.raises(ValueError, match="hour"):
        reports.set_schedule(engine, enabled=True, hour=24, by="x", now=NOW)
    engine.dispose()


def test_step_10_adds_the_report_tables_to_an_older_database(store_url: str) -> None:
    engine = open_engine(store_url, pool_size=1)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE monthly_reports"))
        conn.execute(text("DROP TABLE report_schedule"))
        conn.execute(text("DELETE FROM schema_version WHERE version = 10"))
    assert migrate(engine, StoreSettings(database_url=store_url)).applied == (10,)
    assert reports.get_schedule(engine).enabled
    assert migrate(engine, StoreSettings(database_url=store_url)).applied == ()
    engine.dispose()


def test_a_unit_with_several_devices_reads_the_same_on_both_stores(pg_url: str, sqlite_url: str) -> None:
    found = []
    for url in (pg_url, sqlite_url):
        engine = open_engine(url, pool_size=2)
        seed_month(engine)
        FixWriter(engine).write(
            [
                Fix(
                    device_id=device,
                    unit_id="a2",
                    ts=at(5, 9, m),
                    received_at=at(5, 9, m),
                    lon=0.5,
                    lat=0.5,
                    accuracy_m=acc,
                )
                for m, device, acc in (
                    (0, "a2-cam", 8.0),
                    (0, "a2-phone", 4.0),
                    (1, "a2-phone", 4.0),
                    (2, "a2-cam", 3.0),
                )
            ]
        )
        fixes = reports.unit_fixes(engine, ["a2", "p1"], NOV_START, DEC_START)
        found.append({u: (f.ts_s.tolist(), f.devices.tolist()) for u, f in fixes.items()})
        a2 = fixes["a2"]
        assert a2.devices.tolist() == [0, 1, 1, 0]  # cam first (ties by device id), then the phone
        assert a2.accuracy_m.tolist() == [8.0, 4.0, 4.0, 3.0]
        engine.dispose()
    assert found[0] == found[1]
