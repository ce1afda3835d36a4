"""The field desk: takes the device messages ingest hands over (status reports, check-ins, roll-call
answers), has each judged by its part, and tells the device on its downlink. Never raises for a device's
message: a bad one is refused with a named reason (counted, dead-lettered), a database away is an answer
too ("retry")."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import Engine

from dispatch.clock import Clock
from dispatch.events import EventBus
from dispatch.field.answers import DeviceAnswer
from dispatch.field.auto_checkin import AutoCheckin
from dispatch.field.checkins import Checkins
from dispatch.field.context import FieldContext
from dispatch.field.downlink import DeviceSender, answer_message, no_channel
from dispatch.field.status import report_status
from dispatch.fleet import Fleet
from dispatch.problems import Unavailable
from dispatch.settings import FieldSettings
from schemas.topics import CHECKIN, STATUS

log = logging.getLogger(__name__)

STORE_UNAVAILABLE = "store_unavailable"
Part = Callable[[str, bytes], Awaitable[DeviceAnswer]]


class FieldDesk:
    """One per API process; the composition root hands it the device messages of `KINDS`."""

    def __init__(
        self,
        engine: Engine,
        fleet: Fleet,
        bus: EventBus,
        clock: Clock,
        settings: FieldSettings,
        send: DeviceSender = no_channel,
    ) -> None:
        self.ctx = FieldContext(engine, fleet, bus, clock, settings, send)
        self.checkins = Checkins(self.ctx)
        self.auto_checkin = AutoCheckin(self.ctx, self.checkins) if settings.auto_checkin else None
        self._parts: dict[str, Part] = {STATUS: self._status, CHECKIN: self.checkins.check_in}

    @property
    def kinds(self) -> frozenset[str]:
        """The device message kinds this desk takes."""
        return frozenset(self._parts)

    async def take(self, device_id: str, kind: str, payload: bytes) -> DeviceAnswer:
        """Judge one device message and tell the device; the answer (HTTP devices are given it too)."""
        try:
            answer = await self._parts[kind](device_id, payload)
        except Unavailable as exc:
            answer = DeviceAnswer(False, f"not taken, retry: {exc.detail}", (STORE_UNAVAILABLE,))
        self.ctx.send([answer_message(device_id, kind, answer.body())], f"{kind} outcome")
        return answer

    async def run(self) -> None:
        """The desk's timers, while the API runs: automatic check-ins follow the picture."""
        auto = self.auto_checkin
        if auto is None:
            await asyncio.Event().wait()
            return
        unsubscribe = self.ctx.fleet.subscribe_changes(auto.on_change)
        try:
            await auto.run()
        finally:
            unsubscribe()

    async def _status(self, device_id: str, payload: bytes) -> DeviceAnswer:
        return await report_status(self.ctx, device_id, payload)
