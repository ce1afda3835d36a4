"""The field desk on a real API over a real database (both stores), driven by a manual clock; what it
sends devices is collected as the composition root's channel would publish it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import Engine

from dispatch.app import ApiPlugin
from dispatch.clock import ManualClock
from dispatch.events import EventBus, Subscription
from dispatch.field.answers import DeviceAnswer
from dispatch.field.desk import FieldDesk
from dispatch.field.plugin import FieldPlugin
from dispatch.fleet import Fleet
from dispatch.settings import FieldSettings
from store import registry
from tests.dispatch.conftest import START_S, LiveApi, fix, running_api
from tests.ingest.ingest_harness import test_secret_hash


def utc(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


@dataclass
class Field:
    """The API with the field desk, the messages sent to devices, and a stream subscription."""

    api: LiveApi
    desk: FieldDesk
    sent: list[tuple[str, bytes]]
    stream: Subscription
    seen: list[dict[str, Any]] = field(default_factory=list)

    @property
    def engine(self) -> Engine:
        return self.api.engine

    def unit(self, unit_id: str, kind: str = "police", *, status: str = "off_duty") -> None:
        record = registry.insert_unit(
            self.engine, id=unit_id, name=unit_id, kind=kind, status=status, now=utc(self.api.clock.now())
        )
        self.api.fleet.track_unit(record)

    def device(self, device_id: str, unit_id: str | None, kind: str = "phone") -> None:
        record = registry.insert_device(
            self.engine, id=device_id, kind=kind, credentials_hash=test_secret_hash(), now=utc(START_S - 7200)
        )
        self.api.fleet.track_device(record)
        if unit_id is not None:
            binding = registry.insert_binding(
                self.engine,
                device_id=device_id,
                unit_id=unit_id,
                valid_from=utc(START_S - 3600),
                valid_to=None,
            )
            self.api.fleet.bind(binding)

    def move(
        self, device_id: str, unit_id: str, lon: float, lat: float, *, age_s: float = 0.0, **kw: Any
    ) -> None:
        """A fix of the device taken `age_s` ago, as ingest hands it to the live picture."""
        self.api.fleet.apply([fix(device_id, unit_id, lon, lat, self.api.clock.now() - age_s, **kw)])

    async def send(self, device_id: str, kind: str, body: Any) -> DeviceAnswer:
        """A device message as ingest hands it over (JSON of `body`, or raw bytes)."""
        payload = body if isinstance(body, bytes) else msgspec.json.encode(body)
        return await self.desk.take(device_id, kind, payload)

    def to(self, device_id: str, kind: str = "offers") -> list[dict[str, Any]]:
        """What the device was sent on its `kind` topic."""
        topic = f"outpost/v1/devices/{device_id}/{kind}"
        return [msgspec.json.decode(p) for t, p in self.sent if t == topic]

    def events(self, prefix: str) -> list[dict[str, Any]]:
        while (event := self.stream.get_nowait()) is not None:
            self.seen.append(event)
        return [e for e in self.seen if str(e.get("type", "")).startswith(prefix)]

    def status(self, unit_id: str) -> str:
        found = registry.get_unit(self.engine, unit_id)
        assert found is not None
        return found.status


@contextlib.asynccontextmanager
async def field_api(url: str, settings: FieldSettings | None = None) -> AsyncIterator[Field]:
    sent: list[tuple[str, bytes]] = []
    desks: list[FieldDesk] = []

    def send(messages: Sequence[tuple[str, bytes]], what: str, /) -> None:
        sent.extend(messages)

    def make(engine: Engine, fleet: Fleet, bus: EventBus, clock: ManualClock) -> list[ApiPlugin]:
        desks.append(FieldDesk(engine, fleet, bus, clock, settings or FieldSettings(), send))
        return [FieldPlugin(desks[0])]

    async with running_api(url, make_plugins=make) as api:
        stream = api.bus.subscribe()
        try:
            yield Field(api, desks[0], sent, stream)
        finally:
            stream.close()
