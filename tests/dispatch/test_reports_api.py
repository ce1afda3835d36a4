"""The report routes through the real app (init_app with the reports plugin) on both stores: dispatchers
read a month as JSON, CSV or HTML (audited), viewers are refused, a future month is a 422 naming `month`
and a malformed one or an unknown format a 400 naming the parameter, POST regenerates; the schedule is
read by dispatchers and changed by admins; the automatic run on the app's clock stores the month before."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from dispatch.app import ApiContext, init_app
from dispatch.clock import ManualClock
from dispatch.events import EventBus
from dispatch.fleet import Fleet
from dispatch.leading import Leading
from dispatch.reports.plugin import ReportsPlugin
from dispatch.reports.service import CHECK_EVERY_S
from dispatch.settings import ApiSettings
from store import access, reports
from store.engine import open_engine
from tests.dispatch.test_reports import RULES
from tests.store.test_reports import NOW, at, seed_month


@dataclass
class Api:
    client: TestClient[Any, Any]
    tokens: dict[str, str]
    clock: ManualClock

    async def get(
        self, path: str, role: str = "dispatcher", method: str = "GET", **kw: Any
    ) -> tuple[int, Any, str]:
        response = await self.client.request(
            method, path, headers={"Authorization": f"Bearer {self.tokens[role]}"}, **kw
        )
        body = await response.read()
        kind = response.headers.get("Content-Type", "")
        return response.status, body, kind


@asynccontextmanager
async def served(
    url: str, *, now_s: float, scheduled: bool = False, leadership: Leading | None = None
) -> AsyncIterator[Api]:
    engine = open_engine(url, pool_size=4)
    seed_month(engine)
    clock = ManualClock(now_s)
    settings = ApiSettings()
    fleet = Fleet(engine, clock, settings)
    ctx = ApiContext(engine=engine, fleet=fleet, bus=EventBus(clock), clock=clock, settings=settings)
    app = init_app(ctx, [ReportsPlugin(RULES, scheduled=scheduled, leadership=leadership)])
    tokens = {
        role: access.create_token(engine, role=role, name=role, now=NOW)[1]
        for role in ("admin", "dispatcher", "viewer")
    }
    try:
        async with TestClient(TestServer(app)) as client:
            yield Api(client, tokens, clock)
    finally:
        engine.dispose()


async def test_reading_a_month_in_every_format(store_url: str) -> None:
    async with served(store_url, now_s=NOW.timestamp()) as api:
        status, body, kind = await api.get("/v1/reports/monthly?month=2026-11")
        assert status == 200 and kind.startswith("application/json")
        report = json.loads(body)
        assert [o["unit_id"] for o in report["officers"]] == ["p1", "a1", "a2", "p2"]
        assert report["trigger"] == "api" and report["station"]["incidents_total"] == 3
        status, body, kind = await api.get("/v1/reports/monthly?month=2026-11&format=csv")
        assert status == 200 and kind.startswith("text/csv") and body.decode().count("\n") == 6
        status, body, kind = await api.get("/v1/reports/monthly?month=2026-11&format=html")
        assert status == 200 and kind.startswith("text/html") and body.count(b"<svg") == 4
        status, again, _ = await api.get("/v1/reports/monthly?month=2026-11")
        assert json.loads(again) == report  # stored on the first request
        status, body, _ = await api.get("/v1/reports/monthly?month=2026-11", method="POST")
        assert status == 200 and json.loads(body)["officers"] == report["officers"]


@pytest.mark.parametrize(
    ("query", "status", "name"),
    [
        ("month=2027-01", 422, "month"),
        ("month=2026-13", 400, "month"),
        ("", 400, "month"),
        ("month=2026-11&format=pdf", 400, "format"),
    ],
)
async def test_bad_input_names_the_parameter(sqlite_url: str, query: str, status: int, name: str) -> None:
    async with served(sqlite_url, now_s=NOW.timestamp()) as api:
        got, body, kind = await api.get(f"/v1/reports/monthly?{query}")
        problem = json.loads(body)
        assert got == status and kind.startswith("application/problem+json")
        assert problem["invalid_params"][0]["name"] == name


async def test_viewers_get_no_report_and_only_admins_change_the_schedule(sqlite_url: str) -> None:
    async with served(sqlite_url, now_s=NOW.timestamp()) as api:
        assert (await api.get("/v1/reports/monthly?month=2026-11", role="viewer"))[0] == 403
        status, body, _ = await api.get("/v1/reports/schedule")
        assert status == 200 and json.loads(body)["enabled"] is True and json.loads(body)["hour"] == 2
        wanted = {"json": {"enabled": False, "hour": 5}}
        assert (await api.get("/v1/reports/schedule", role="dispatcher", method="PUT", **wanted))[0] == 403
        status, body, _ = await api.get("/v1/reports/schedule", role="admin", method="PUT", **wanted)
        assert status == 200 and json.loads(body)["enabled"] is False and json.loads(body)["hour"] == 5
        bad = {"json": {"enabled": True, "hour": 24}}
        status, body, _ = await api.get("/v1/reports/schedule", role="admin", method="PUT", **bad)
        assert status == 400 and json.loads(body)["invalid_params"][0]["name"] == "body.hour"


async def test_the_automatic_run_stores_the_month_before_on_the_apps_clock(sqlite_url: str) -> None:
    async with served(sqlite_url, now_s=at(1, 1, 30, month=12).timestamp(), scheduled=True) as api:
        engine = open_engine(sqlite_url, pool_size=1)
        await api.clock.tick(0)
        assert reports.stored_months(engine) == []  # 01:30 on the 1st: not yet
        await api.clock.tick(45 * 60)  # 02:15
        for _ in range(200):  # the run works in a thread: let it finish (no time is asserted)
            await api.clock.tick(CHECK_EVERY_S)
            if reports.stored_months(engine):
                break
            await asyncio.sleep(0.05)
        stored = reports.get_report(engine, "2026-11")
        assert stored is not None and stored.trigger == "auto"
        engine.dispose()


class Lead:
    """A replica's leadership that leads once told to."""

    def __init__(self) -> None:
        self.led = asyncio.Event()

    async def wait_leading(self) -> None:
        await self.led.wait()


async def test_among_replicas_only_the_leader_runs_the_schedule(sqlite_url: str) -> None:
    lead = Lead()
    async with served(
        sqlite_url, now_s=at(1, 2, 15, month=12).timestamp(), scheduled=True, leadership=lead
    ) as api:
        engine = open_engine(sqlite_url, pool_size=1)
        for _ in range(20):  # due, but this replica follows: nothing is generated
            await api.clock.tick(CHECK_EVERY_S)
            await asyncio.sleep(0.01)
        assert reports.stored_months(engine) == []
        lead.led.set()  # it takes the lead (the other replica died)
        for _ in range(200):
            await api.clock.tick(CHECK_EVERY_S)
            if reports.stored_months(engine):
                break
            await asyncio.sleep(0.05)
        assert reports.stored_months(engine) == ["2026-11"]
        engine.dispose()
