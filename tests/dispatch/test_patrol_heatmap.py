"""The patrol presence and gaps heat maps over the real API, on PostgreSQL and SQLite alike, against the
hand-computed fixture of tests/store/test_presence.py; a grid narrows them, bad input is named, reads are
audited."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from shapely.geometry import MultiPolygon, box

from dispatch.clock import ManualClock
from geo.hexes import cell_id, cell_of
from store import access, grids, incidents
from tests.dispatch.conftest import START_S, LiveApi, running_api
from tests.store.test_presence import CELL_A, CELL_B, FAR, T0, A, B, seed
from tests.support.problems import assert_problem

LATER = ManualClock(START_S + 10 * 3600)  # the fixture's hours are settled: read from the rollup
SPAN = "from=2024-05-30T17:00:00Z&to=2024-05-30T19:00:00Z"
QUERIES = [
    f"/v1/heatmap/patrol?res=9&{SPAN}",
    f"/v1/heatmap/patrol?res=9&{SPAN}&unit=u1",
    "/v1/heatmap/patrol?res=9&from=2024-05-30T17:30:00Z&to=2024-05-30T18:30:00Z",
    f"/v1/heatmap/patrol?res=7&{SPAN}",
    f"/v1/heatmap/gaps?res=9&{SPAN}",
    f"/v1/heatmap/gaps?res=9&{SPAN}&priority=P1",
    f"/v1/heatmap/patrol?res=9&{SPAN}&grid=around-a",
]


def _incidents(api: LiveApi) -> None:
    """Three at A, one at B, two at a place no unit went; all P3 but one at A (P1)."""
    places = [(A, "P1"), (A, "P3"), (A, "P3"), (B, "P3"), (FAR, "P3"), (FAR, "P3")]
    with api.engine.begin() as conn:
        for n, ((lon, lat), priority) in enumerate(places):
            at = (T0 + timedelta(minutes=10 * n)).timestamp()
            incidents.insert_incident(
                conn,
                {
                    "id": f"i{n}",
                    "state": "closed",
                    "priority": priority,
                    "category": "assault",
                    "source": "call",
                    "lon": lon,
                    "lat": lat,
                    "tier_entered_at": at,
                    "created_by": "t",
                    "reported_at": at,
                },
            )


async def _answers(url: str) -> list[Any]:
    async with running_api(url, clock=ManualClock(LATER.now())) as api:
        seed(api.engine)
        _incidents(api)
        lon, lat = A
        grids.create_grid(
            api.engine,
            grid_id="around-a",
            level="police",
            name="A",
            parent_id=None,
            geometry=MultiPolygon([box(lon - 0.002, lat - 0.002, lon + 0.002, lat + 0.002)]),
            now=T0,
        )
        return [await api.json("GET", q, role="viewer") for q in QUERIES]


def _m(seconds: float) -> float:
    return round(seconds / 60, 3)


def _minutes(answer: Any) -> dict[str, float]:
    return {f["id"]: f["properties"]["minutes"] for f in answer["features"]}


async def test_both_stores_answer_alike_and_as_computed_by_hand(pg_url: str, sqlite_url: str) -> None:
    on_pg, on_sqlite = await _answers(pg_url), await _answers(sqlite_url)
    assert on_pg == on_sqlite
    whole, u1, edges, coarse, gaps, gaps_p1, in_grid = on_pg
    a, b, far = cell_id(CELL_A), cell_id(CELL_B), cell_id(cell_of(*FAR, 9))
    assert _minutes(whole) == {a: _m(2650), b: _m(390)}
    assert whole["total_minutes"] == round(3040 / 60, 3) and whole["res"] == 9
    assert whole["features"][0]["geometry"]["type"] == "Polygon"
    assert _minutes(u1) == {a: _m(250), b: _m(390)}
    assert _minutes(edges) == {a: _m(820), b: _m(150)}
    assert coarse["total_minutes"] == _m(3040) and sum(_minutes(coarse).values()) == pytest.approx(_m(3040))
    ranking = [(f["id"], f["properties"]["rank"], f["properties"]["incidents"]) for f in gaps["features"]]
    assert ranking == [(far, 1, 2), (b, 2, 1), (a, 3, 3)]  # never patrolled; 1 in 0.108 h; 3 in 0.736 h
    assert gaps["features"][0]["properties"]["incidents_per_patrol_hour"] is None
    assert gaps["features"][1]["properties"]["patrol_hours"] == round(390 / 3600, 4)
    assert gaps["features"][2]["properties"]["incidents_per_patrol_hour"] == round(3 / (2650 / 3600), 4)
    assert [f["id"] for f in gaps_p1["features"]] == [a]
    assert _minutes(in_grid) == {a: _m(2650)}


async def test_patrol_reads_are_audited(sqlite_url: str) -> None:
    async with running_api(sqlite_url, clock=ManualClock(LATER.now())) as api:
        seed(api.engine)
        await api.json("GET", f"/v1/heatmap/patrol?res=8&{SPAN}&unit=u1", role="viewer")
        await api.json("GET", f"/v1/heatmap/gaps?res=8&{SPAN}", role="viewer")
        await api.flush_audit()
        reads = [
            (e.action, e.subject) for e in access.read_audit(api.engine) if e.subject == "heatmap:patrol"
        ]
    assert reads == [("read_presence", "heatmap:patrol"), ("read_gaps", "heatmap:patrol")]


BAD_INPUT = [
    f"400 res patrol?res=10&{SPAN}",  # finer than OUTPOST_PATROL_RES (9)
    f"400 res patrol?res=x&{SPAN}",
    f"400 unit patrol?{SPAN}&unit=nobody",
    f"400 grid patrol?{SPAN}&grid=nowhere",
    "400 to patrol?from=2024-05-30T19:00:00Z&to=2024-05-30T17:00:00Z",
    "400 to patrol?from=2024-05-30T17:00:00Z",
    "400 from patrol?to=2024-05-30T17:00:00Z",
    "422 to patrol?from=2020-01-01T00:00:00Z&to=2024-05-30T17:00:00Z",
    f"400 res gaps?res=10&{SPAN}",
    f"400 category gaps?{SPAN}&category=ufo",
    f"400 limit gaps?{SPAN}&limit=0",
    "400 to gaps?from=2024-05-30T17:00:00Z",
]  # "status parameter query": the answer names the parameter


@pytest.mark.parametrize("case", BAD_INPUT)
async def test_bad_input_is_a_problem_naming_the_parameter(sqlite_url: str, case: str) -> None:
    status, name, query = case.split(" ", 2)
    async with running_api(sqlite_url, clock=ManualClock(LATER.now())) as api:
        seed(api.engine)
        response = await api.call("GET", f"/v1/heatmap/{query}", role="viewer")
        await assert_problem(response, int(status), name)
