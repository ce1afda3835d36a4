"""Fixtures for the live picture and the API: a real app on a real database, driven by a manual clock."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web import Application
from sqlalchemy import Engine, create_engine, make_url

from dispatch.app import ApiContext, ApiPlugin, init_app
from dispatch.audit import AuditLog
from dispatch.clock import ManualClock
from dispatch.events import EventBus
from dispatch.fleet import Fleet
from dispatch.keys import AUDIT_KEY
from dispatch.settings import ApiSettings
from schemas.fix import Fix
from store import access
from store.engine import open_engine
from tests.support.services import free_port

# 2024-05-30T17:00:00Z: a fixed start so every test sees the same times.
START_S = 1_717_088_400.0


@dataclass
class LiveApi:
    """A running API over a real database, with one token per role."""

    client: TestClient[Any, Any]
    app: Application
    engine: Engine
    fleet: Fleet
    bus: EventBus
    clock: ManualClock
    settings: ApiSettings
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, role: str | None) -> dict[str, str]:
        return {} if role is None else {"Authorization": f"Bearer {self.tokens[role]}"}

    async def call(self, method: str, path: str, role: str | None = "admin", **kw: Any) -> ClientResponse:
        return await self.client.request(method, path, headers=self.headers(role), **kw)

    async def json(
        self, method: str, path: str, role: str | None = "admin", status: int = 200, **kw: Any
    ) -> Any:
        response = await self.call(method, path, role, **kw)
        body = await response.json(content_type=None)
        assert response.status == status, (response.status, body)
        return body

    async def flush_audit(self) -> None:
        await self.app[AUDIT_KEY].flush()


def fix(
    device_id: str,
    unit_id: str | None,
    lon: float,
    lat: float,
    ts_s: float,
    *,
    accuracy_m: float | None = 10.0,
    flags: int = 0,
) -> Fix:
    """A fix as ingest would hand it over."""
    ts = datetime.fromtimestamp(ts_s, UTC)
    return Fix(
        device_id=device_id,
        ts=ts,
        lon=lon,
        lat=lat,
        received_at=ts,
        unit_id=unit_id,
        accuracy_m=accuracy_m,
        flags=flags,
    )


@contextlib.asynccontextmanager
async def running_api(
    url: str,
    *,
    settings: ApiSettings | None = None,
    clock: ManualClock | None = None,
    plugins: Sequence[ApiPlugin] = (),
    make_plugins: Callable[[Engine, Fleet, EventBus, ManualClock], Sequence[ApiPlugin]] | None = None,
) -> AsyncIterator[LiveApi]:
    """Start the API app on a free port over the database at `url` (`make_plugins`: plugins built on the
    API's own engine, fleet, bus and clock)."""
    engine = open_engine(url, pool_size=4)
    clock = clock or ManualClock(START_S)
    settings = settings or ApiSettings()
    fleet = Fleet(engine, clock, settings)
    bus = EventBus(
        clock,
        coalesce_s=settings.stream_coalesce_s,
        max_queued=settings.stream_max_queued,
        replay_max=settings.stream_replay_events,
    )
    if make_plugins is not None:
        plugins = [*plugins, *make_plugins(engine, fleet, bus, clock)]
    app = init_app(ApiContext(engine=engine, fleet=fleet, bus=bus, clock=clock, settings=settings), plugins)
    now = datetime.fromtimestamp(clock.now(), UTC)
    tokens = {
        role: access.create_token(engine, role=role, name=f"test-{role}", now=now)[1]
        for role in ("admin", "dispatcher", "viewer")
    }
    try:
        async with TestClient(TestServer(app)) as client:
            yield LiveApi(client, app, engine, fleet, bus, clock, settings, tokens)
    finally:
        engine.dispose()


@pytest.fixture
async def live_api(store_url: str) -> AsyncIterator[LiveApi]:
    """The API over PostgreSQL and over SQLite (parametrised)."""
    async with running_api(store_url) as api:
        yield api


@pytest.fixture
async def pg_api(pg_url: str) -> AsyncIterator[LiveApi]:
    """The API over PostgreSQL only."""
    async with running_api(pg_url) as api:
        yield api


@pytest.fixture
async def sqlite_api(sqlite_url: str) -> AsyncIterator[LiveApi]:
    """The API over the embedded SQLite store only (quick, for tests where storage does not matter)."""
    async with running_api(sqlite_url) as api:
        yield api


def refusing_engine(url: str, tmp_path: Path) -> Engine:
    """A real engine the database refuses: PostgreSQL on a port nobody listens on, SQLite in a folder that
    is a file."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return open_engine(parsed.set(port=free_port()).render_as_string(hide_password=False), pool_size=1)
    (tmp_path / "not-a-folder").write_text("")
    return create_engine(f"sqlite:///{tmp_path / 'not-a-folder' / 'outpost.db'}")


def refuse_audit(audit: AuditLog, engine: Engine) -> Engine:
    """Fault injection: the audit's writes go to `engine`; returns the engine it had."""
    kept: Engine = audit._engine  # the fault is injected where the audit meets the database
    audit._appender.close()
    audit._engine, audit._appender = engine, access.AuditAppender(engine)
    return kept
