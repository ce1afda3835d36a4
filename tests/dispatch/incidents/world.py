"""A small real world for incident tests: a migrated database, units in the registry, the real Fleet fed
with fixes, the real EventBus, the IncidentService, and a ManualClock. Nothing is mocked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import Engine

from dispatch.app import ApiContext, init_app
from dispatch.clock import ManualClock
from dispatch.events import EventBus, Subscription
from dispatch.fleet import Fleet
from dispatch.incidents import models as m
from dispatch.incidents.plugin import IncidentsPlugin
from dispatch.incidents.service import IncidentService
from dispatch.settings import ApiSettings, DispatchSettings
from geo.distance import destination
from schemas.fix import Fix
from store import access, registry
from store.engine import open_engine
from tests.ingest.ingest_harness import test_secret_hash

# Union Square, San Francisco.
CENTRE = (-122.4075, 37.7880)
START_S = 1_714_550_400.0  # 2024-05-01T08:00:00Z


def utc(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def point(bearing_deg: float, distance_m: float, origin: tuple[float, float] = CENTRE) -> tuple[float, float]:
    """The (lon, lat) `distance_m` from `origin` towards `bearing_deg`."""
    return destination(origin[0], origin[1], bearing_deg, distance_m)


@dataclass
class World:
    """Everything one test needs, on one database."""

    engine: Engine
    clock: ManualClock
    fleet: Fleet
    bus: EventBus
    service: IncidentService
    stream: Subscription
    seen: list[dict[str, Any]] = field(default_factory=list)
    devices: dict[str, str] = field(default_factory=dict)  # unit → its bound device

    def add_unit(
        self,
        unit_id: str,
        kind: str = "police",
        *,
        status: str = "available",
        at: tuple[float, float] | None = None,
        device: str | None = None,
    ) -> None:
        """Register a unit (and optionally a device bound to it) and put it at `at`."""
        now = utc(self.clock.now())
        record = registry.insert_unit(
            self.engine, id=unit_id, name=unit_id, kind=kind, status=status, now=now
        )
        self.fleet.track_unit(record)
        if device is not None:
            registry.insert_device(
                self.engine, id=device, kind="phone", credentials_hash=test_secret_hash(), now=now
            )
            binding = registry.insert_binding(
                self.engine, device_id=device, unit_id=unit_id, valid_from=utc(START_S - 3600), valid_to=None
            )
            self.fleet.bind(binding)
            self.devices[unit_id] = device
        if at is not None:
            self.move(unit_id, at)

    def move(self, unit_id: str, at: tuple[float, float]) -> None:
        """A fix of the unit at `at`, now (what ingest hands the fleet)."""
        now = utc(self.clock.now())
        self.fleet.apply(
            [
                Fix(
                    device_id=self.devices.get(unit_id, f"{unit_id}-tracker"),
                    ts=now,
                    lon=at[0],
                    lat=at[1],
                    received_at=now,
                    unit_id=unit_id,
                    accuracy_m=5.0,
                )
            ]
        )

    def status(self, unit_id: str) -> str:
        """The unit's status in the database (the truth)."""
        found = registry.get_unit(self.engine, unit_id)
        assert found is not None
        return found.status

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Incident events published so far (optionally of one kind, e.g. "offered")."""
        while (event := self.stream.get_nowait()) is not None:
            if str(event.get("type", "")).startswith("incident."):
                self.seen.append(event)
        return [e for e in self.seen if kind is None or e["type"] == f"incident.{kind}"]

    async def report(self, priority: str = "P3", at: tuple[float, float] = CENTRE, **extra: Any) -> str:
        """Create an incident as a dispatcher; returns its id."""
        body = m.IncidentIn(
            lon=at[0],
            lat=at[1],
            category=extra.pop("category", "disturbance"),
            priority=priority,  # type: ignore[arg-type]
            source=extra.pop("source", "call"),
            **extra,
        )
        created = await self.service.create(body, actor="token:1:alice")
        return created.id

    async def advance(self, seconds: float) -> None:
        """Move the clock deadline by deadline, letting each fired timer finish (and arm the next) first."""
        target = self.clock.now() + seconds
        await self.service.settle()
        while (due := self.service.deps.timers.next_due_s) is not None and due <= target:
            await self.clock.tick(max(0.0, due - self.clock.now()))
            await self.service.settle()
        await self.clock.tick(target - self.clock.now())
        await self.service.settle()


@asynccontextmanager
async def world_on(
    url: str, settings: DispatchSettings | None = None, *, start: bool = True
) -> AsyncIterator[World]:
    """A world on the database at `url` (the service started unless `start` is false); stopped on exit."""
    engine = open_engine(url, pool_size=4)
    clock = ManualClock(START_S)
    api = ApiSettings()
    fleet = Fleet(engine, clock, api)
    await fleet.rebuild(engine, api.index_lookback_s)
    bus = EventBus(clock)
    stream = bus.subscribe()
    service = IncidentService(engine, fleet, bus, clock, settings or DispatchSettings(), api)
    if start:
        await service.start()
    try:
        yield World(engine, clock, fleet, bus, service, stream)
    finally:
        await service.stop()
        stream.close()
        engine.dispose()


@dataclass
class Served:
    """A world with the real API app (init_app + the incidents plugin) on a free port."""

    world: World
    client: TestClient[Any, Any]
    tokens: dict[str, str]

    async def call(
        self,
        method: str,
        path: str,
        role: str = "dispatcher",
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> tuple[int, Any, dict[str, str]]:
        """(status, JSON body, headers) of one request as a token of `role`."""
        sent = {"Authorization": f"Bearer {self.tokens[role]}", **(headers or {})}
        response = await self.client.request(method, path, headers=sent, **kw)
        body = await response.json(content_type=None)
        if status is not None:
            assert response.status == status, (response.status, body)
        return response.status, body, dict(response.headers)


@asynccontextmanager
async def served(url: str, settings: DispatchSettings | None = None) -> AsyncIterator[Served]:
    """The API (core routes plus incidents) over a world on `url`; the plugin starts the service."""
    async with world_on(url, settings, start=False) as w:
        ctx = ApiContext(engine=w.engine, fleet=w.fleet, bus=w.bus, clock=w.clock, settings=ApiSettings())
        app = init_app(ctx, [IncidentsPlugin(w.service)])
        now = utc(w.clock.now())
        tokens = {
            role: access.create_token(w.engine, role=role, name=role, now=now)[1]
            for role in ("admin", "dispatcher", "viewer")
        }
        async with TestClient(TestServer(app)) as client:
            yield Served(w, client, tokens)
