"""The incidents heat map over the real API: the shipped SFPD day imported into PostgreSQL and SQLite, every
query answered by both and compared with each other and with a count in Python; bad input named."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dispatch.settings import ApiSettings
from geo.hexes import cell_id, cell_of, parent_of
from outpost.incident_csv import open_text, read_rows
from store import incidents
from store.engine import open_engine
from store.incidents.history import HistoricIncident, import_batch
from tests.dispatch.conftest import LiveApi, running_api
from tests.support.problems import assert_problem

DAY = Path(__file__).resolve().parents[2] / "sim" / "data" / "sf_incidents_2008-05-30.csv.gz"
ZONE = "America/Los_Angeles"
SETTINGS = ApiSettings(station_timezone=ZONE)
SPAN = "from=2008-05-30T07:00:00Z&to=2008-05-31T07:00:00Z"
QUERIES = [
    f"res=8&{SPAN}",
    f"res=10&{SPAN}",
    f"res=5&{SPAN}",
    f"res=9&{SPAN}&category=LARCENY/THEFT,assault",
    f"res=8&{SPAN}&priority=P1,P2",
    f"res=8&{SPAN}&hour=17,18,19,20",
    f"res=8&{SPAN}&weekday=fri&hour=0",
    "res=7&from=2008-05-30T12:00:00Z&to=2008-05-30T13:00:00Z",
    f"res=8&{SPAN}&weekday=sat",  # local Friday only: nothing
]


def _incidents() -> list[HistoricIncident]:
    with open_text(DAY) as text:
        rows = [r for r in read_rows(text, {}) if isinstance(r, HistoricIncident)]
    assert len(rows) == 189
    return rows


def _load(url: str) -> None:
    engine = open_engine(url)
    import_batch(engine, _incidents(), created_by="test")
    engine.dispose()


def _python_count(query: str) -> dict[str, int]:
    """What the heat map must answer, counted by hand."""
    params = dict(p.split("=", 1) for p in query.split("&"))
    start = datetime.fromisoformat(params["from"])
    end = datetime.fromisoformat(params["to"])
    cats = {c.lower() for c in params["category"].split(",")} if "category" in params else None
    hours = {int(h) for h in params["hour"].split(",")} if "hour" in params else None
    days = {"fri": 5, "sat": 6}[params["weekday"]] if "weekday" in params else None
    counts: Counter[str] = Counter()
    for i in _incidents():
        local = i.reported_at.astimezone(ZoneInfo(ZONE))
        if not start <= i.reported_at < end:
            continue
        if cats is not None and i.category not in cats:
            continue
        if "priority" in params and i.priority not in params["priority"].split(","):
            continue
        if (hours is not None and local.hour not in hours) or (
            days is not None and local.isoweekday() != days
        ):
            continue
        counts[cell_id(parent_of(cell_of(i.lon, i.lat), int(params["res"])))] += 1
    return dict(counts)


async def _answers(url: str) -> list[dict[str, Any]]:
    async with running_api(url, settings=SETTINGS) as api:
        return [await api.json("GET", f"/v1/heatmap/incidents?{q}", role="viewer") for q in QUERIES]


async def test_both_stores_answer_every_query_alike_and_right(pg_url: str, sqlite_url: str) -> None:
    _load(pg_url)
    _load(sqlite_url)
    on_pg, on_sqlite = await _answers(pg_url), await _answers(sqlite_url)
    assert on_pg == on_sqlite
    for query, answer in zip(QUERIES, on_pg, strict=True):
        got = {f["id"]: f["properties"]["count"] for f in answer["features"]}
        assert got == _python_count(query), query
        assert answer["total"] == sum(got.values())
    whole_day = on_pg[0]
    assert whole_day["total"] == 189 and whole_day["res"] == 8 and whole_day["timezone"] == ZONE
    feature = whole_day["features"][0]
    assert feature["geometry"]["type"] == "Polygon"
    lon, lat = feature["geometry"]["coordinates"][0][0]
    assert -123 < lon < -122 and 37 < lat < 38  # lon/lat order
    assert sum(f["properties"]["count"] for f in on_pg[2]["features"]) == 189  # res 5: levels add up


async def test_a_new_incident_is_on_the_map(sqlite_api: LiveApi) -> None:
    api, at = sqlite_api, datetime(2024, 5, 30, 12, tzinfo=UTC).timestamp()
    with api.engine.begin() as conn:  # the insert the incident service makes
        incidents.insert_incident(
            conn,
            {
                "id": "i1",
                "state": "new",
                "priority": "P3",
                "category": "assault",
                "source": "call",
                "lon": -122.4194,
                "lat": 37.7793,
                "tier_entered_at": at,
                "created_by": "t",
                "reported_at": at,
            },
        )
    answer = await api.json(
        "GET", "/v1/heatmap/incidents?res=9&from=2024-05-30T00:00:00Z&to=2024-05-31T00:00:00Z", role="viewer"
    )
    assert [f["id"] for f in answer["features"]] == [cell_id(parent_of(cell_of(-122.4194, 37.7793), 9))]


@pytest.mark.parametrize(
    ("query", "status", "name"),
    [
        (f"res=16&{SPAN}", 400, "res"),
        (f"res=-1&{SPAN}", 400, "res"),
        (f"res=eight&{SPAN}", 400, "res"),
        ("res=8&from=2008-05-31T07:00:00Z&to=2008-05-30T07:00:00Z", 400, "to"),
        ("res=8&from=2008-05-30T07:00:00Z&to=2008-05-30T07:00:00Z", 400, "to"),
        ("res=8&from=2008-05-30T07:00:00Z", 400, "to"),
        ("res=8&to=2008-05-30T07:00:00Z", 400, "from"),
        ("res=8&from=2008-05-30T07:00:00&to=2008-05-31T07:00:00Z", 400, "from"),
        ("res=8&from=2000-01-01T00:00:00Z&to=2008-05-31T07:00:00Z", 422, "to"),
        (f"{SPAN}&category=ufo", 400, "category"),
        (f"{SPAN}&priority=P9", 400, "priority"),
        (f"{SPAN}&hour=24", 400, "hour"),
        (f"{SPAN}&weekday=someday", 400, "weekday"),
    ],
)
async def test_bad_input_is_a_problem_naming_the_parameter(
    sqlite_url: str, query: str, status: int, name: str
) -> None:
    _load(sqlite_url)
    async with running_api(sqlite_url, settings=SETTINGS) as api:
        await assert_problem(
            await api.call("GET", f"/v1/heatmap/incidents?{query}", role="viewer"), status, name
        )


async def test_the_heat_map_needs_a_token(sqlite_api: LiveApi) -> None:
    response = await sqlite_api.call("GET", f"/v1/heatmap/incidents?{SPAN}", role=None)
    assert response.status == 401


def test_import_rows_are_utc() -> None:
    assert all(i.reported_at.tzinfo == UTC for i in _incidents())
