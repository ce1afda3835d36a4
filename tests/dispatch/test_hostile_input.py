"""Hostile values on the core routes get a 4xx naming what is wrong, never a 500 (issue 15, item 4): NUL and
other control characters in paths, queries and bodies, integers beyond what the database holds, digits
that are not ASCII, unbounded arrays. And what still slips past validation is a 4xx from `run_db`."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, text

from dispatch.blocking import run_db
from dispatch.problems import Conflict, InvalidParameter
from dispatch.reports.plugin import ReportsPlugin
from dispatch.screening import refuse_nul_in_json
from store.engine import open_engine
from tests.dispatch.conftest import START_S, LiveApi, fix, running_api
from tests.dispatch.test_reports_api import RULES

DAY = {"starts_at": "2024-01-01T00:00:00Z", "ends_at": "2024-01-02T00:00:00Z"}
# (method, path, body or None, the status, the parameter the problem names)
CASES: list[tuple[str, str, dict[str, Any] | None, int, str]] = [
    ("GET", "/v1/units/a%00b", None, 400, "id"),
    ("GET", "/v1/grids/%00", None, 400, "id"),
    ("GET", "/v1/audit?actor=%00", None, 400, "actor"),
    ("GET", "/v1/checkins?unit=a%01b", None, 400, "unit"),
    ("GET", "/v1/units/nearest?lon=0&lat=0&k=%D9%A3", None, 400, "k"),
    ("GET", "/v1/units/nearest?lon=0&lat=0&k=99999999999999999999", None, 400, "k"),
    ("DELETE", "/v1/tokens/99999999999999999999999", None, 400, "id"),
    ("DELETE", "/v1/tokens/%D9%A3", None, 400, "id"),  # an Arabic-Indic 3: not token 3
    ("POST", "/v1/units", {"id": "u-n", "name": "n\u0000", "kind": "police"}, 400, "body.name"),
    ("POST", "/v1/units", {"id": "u-n", "name": "n\u0007", "kind": "police"}, 400, "body.name"),
    (
        "POST",
        "/v1/units",
        {"id": "u-s", "name": "s", "kind": "police", "skills": ["a"] * 65},
        400,
        "body.skills",
    ),
    ("POST", "/v1/tokens", {"name": "\u0000", "role": "viewer"}, 400, "body.name"),
    (
        "POST",
        "/v1/devices",
        {"id": "dv", "kind": "phone", "priority": 9223372036854775807},
        400,
        "body.priority",
    ),
    ("POST", "/v1/units/u1/status", {"status": "busy", "expected": ["available"] * 17}, 400, "body.expected"),
    ("POST", "/v1/shifts", {"name": "night\u0000", **DAY}, 400, "body.name"),
    ("POST", "/v1/units/u1/status", {"status": "busy", "why": "a\u0000"}, 400, "body.why"),
    ("POST", "/v1/shifts", {"name": "night\n", **DAY}, 400, "body.name"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "named"), CASES)
async def test_a_hostile_value_is_a_4xx_naming_it(
    live_api: LiveApi, method: str, path: str, body: dict[str, Any] | None, status: int, named: str
) -> None:
    await live_api.json("POST", "/v1/units", json={"id": "u1", "name": "u1", "kind": "police"}, status=201)
    kw = {"json": body} if body is not None else {}
    problem = await live_api.json(method, path, status=status, **kw)
    assert [p["name"] for p in problem["invalid_params"]] == [named], problem


async def test_an_escaped_backslash_before_u0000_is_text_not_nul(live_api: LiveApi) -> None:
    made = await live_api.json(
        "POST", "/v1/units", json={"id": "u2", "name": "a\\u0000b", "kind": "police"}, status=201
    )
    assert made["name"] == "a\\u0000b"


async def test_what_slips_past_validation_is_refused_by_the_database_as_a_4xx(pg_engine: Engine) -> None:
    def select(value: object) -> object:
        with pg_engine.connect() as conn:
            return conn.execute(text("SELECT CAST(:v AS integer)"), {"v": value}).scalar()

    def insert_twice() -> None:
        with pg_engine.begin() as conn:
            conn.execute(text("CREATE TEMPORARY TABLE once (id integer PRIMARY KEY)"))
            conn.execute(text("INSERT INTO once VALUES (1), (1)"))

    with pytest.raises(InvalidParameter, match="cannot hold"):
        await run_db(select, "a\x00b")
    with pytest.raises(InvalidParameter, match="out of range"):
        await run_db(select, 2**40)
    with pytest.raises(Conflict, match="duplicate key"):
        await run_db(insert_twice)


@pytest.mark.parametrize(
    ("raw", "refused"),
    [
        (rb'{"a": "x\u0000"}', True),
        (rb'{"a": ["ok", {"b": "\\\u0000"}]}', True),  # an escaped backslash, then a NUL
        (rb'{"a": "x\\u0000"}', False),  # the six characters \u0000, as text
        (rb'{"a": "x\\\\u0000"}', False),
        (rb'{"a": "x\u0001"}', False),  # other controls: the field's type decides
    ],
)
def test_a_nul_anywhere_in_a_json_body_is_found_and_text_that_spells_it_is_not(
    raw: bytes, refused: bool
) -> None:
    if refused:
        with pytest.raises(InvalidParameter, match="NUL"):
            refuse_nul_in_json(raw)
    else:
        refuse_nul_in_json(raw)


async def test_answers_name_no_server_version_and_api_answers_are_not_cached(live_api: LiveApi) -> None:
    units = await live_api.call("GET", "/v1/units", role="viewer")
    assert units.status == 200 and units.headers["Cache-Control"] == "no-store"
    health = await live_api.call("GET", "/healthz", role=None)
    for response in (units, health):
        assert response.headers["Server"] == "Outpost"


async def test_a_database_error_names_its_sql_never_its_values(store_url: str) -> None:
    """Error logs once printed the SQL's parameters (a token hash, a lost alarm's position)."""
    engine = open_engine(store_url)
    secret = "4f1c0ffee-secret-token-hash"

    def fail() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT no_such_column FROM api_tokens WHERE token_hash = :h"), {"h": secret})

    with pytest.raises(Exception) as caught:
        await run_db(fail)
    engine.dispose()
    assert "no_such_column" in str(caught.value) and secret not in str(caught.value)


async def test_a_last_event_id_in_other_digits_is_refused_not_read_as_a_number(live_api: LiveApi) -> None:
    headers = {**live_api.headers("viewer"), "Last-Event-ID": "١٢"}  # Arabic-Indic 12: int() would take it
    response = await live_api.client.get("/v1/stream", headers=headers)
    problem = await response.json(content_type=None)
    assert response.status == 400 and problem["invalid_params"][0]["name"] == "Last-Event-ID"


# Instants at the calendar's ends (year 1, the last hour of 9999): a look-back or a rounding past them
# once raised OverflowError (patrol heat map, snapshot) or ValueError (the report of 9999-12) as a 500.
_FIRST_DAYS = ("0001-01-01T00:00:00Z", "0001-01-20T00:00:00Z")
_LAST_HOUR = ("9999-12-31T23:10:00Z", "9999-12-31T23:59:59Z")
CALENDAR_ENDS = [
    path.format(lo=lo, hi=hi)
    for lo, hi in (_FIRST_DAYS, _LAST_HOUR)
    for path in (
        "/v1/heatmap/patrol?from={lo}&to={hi}",
        "/v1/heatmap/incidents?from={lo}&to={hi}",
        "/v1/heatmap/gaps?from={lo}&to={hi}",
        "/v1/units/u1/track?from={lo}&to={hi}",
        "/v1/units/u1/summary?from={lo}&to={hi}",
        "/v1/units/u1/status-history?from={lo}&to={hi}",
        "/v1/shifts?from={lo}&to={hi}",
        "/v1/units/snapshot?at={lo}",
        "/v1/units/snapshot?at={hi}",
        "/v1/units/snapshot?from={lo}&to={hi}&step_s=60",
        "/v1/assignments?at={hi}",
        "/v1/grids?at={lo}",
        "/v1/audit?since={lo}&until={hi}",
    )
]


async def test_instants_at_the_ends_of_the_calendar_are_answered_without_a_5xx(store_url: str) -> None:
    async with running_api(store_url, plugins=[ReportsPlugin(RULES)]) as api:
        await api.json("POST", "/v1/units", json={"id": "u1", "name": "A", "kind": "police"}, status=201)
        api.fleet.apply([fix("d1", "u1", 4.35, 50.85, START_S)])
        answers = {}
        for path in [*CALENDAR_ENDS, "/v1/reports/monthly?month=9999-12"]:
            response = await api.call("GET", path, "admin")
            answers[path] = (response.status, (await response.read())[:200])
        assert [(p, a) for p, a in answers.items() if a[0] >= 500] == []
        assert answers["/v1/reports/monthly?month=9999-12"][0] == 422  # a month that has not begun


async def test_a_patrol_heat_map_over_years_without_fixes_computes_no_hour(pg_api: LiveApi) -> None:
    # Hour by hour, a year before the first fix was 8,784 hours computed and marked done, per request.
    api = pg_api
    heat = await api.json("GET", "/v1/heatmap/patrol?from=2023-05-01T00:00:00Z&to=2024-04-30T00:00:00Z")
    assert heat["features"] == []
    with api.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM patrol_presence_hours")).scalar() == 0
