"""The field desk: takes the device messages ingest hands over (status reports, check-ins, roll-call
answers), has each judged by its part, and tells the device on its downlink. Never raises for a device's
message: a bad one is refused with a named reason (counted, dead-lettered), a database away is an answer
too ("retry")."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Engine

from dispatch.clock import Clock
from dispatch.events import EventBus
from dispatch.field.answers import MALFORMED, DeviceAnswer, decode
from dispatch.field.auto_checkin import AutoCheckin
from dispatch.field.checkins import Checkins
from dispatch.field.context import FieldContext
from dispatch.field.downlink import DeviceSender, answer_message, no_channel
from dispatch.field.rollcalls import RollCalls
from dispatch.field.status import report_status
from dispatch.fleet import Fleet
from dispatch.problems import Unavailable
from dispatch.settings import FieldSettings
from schemas.device_messages import SHAPES, StatusIn
from schemas.topics import ANSWER, CHECKIN, STATUS

log = logging.getLogger(__name__)

STORE_UNAVAILABLE = "store_unavailable"
Part = Callable[[str, Any, bytes], Awaitable[DeviceAnswer]]  # (device id, decoded body, payload)


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
        self.rollcalls = RollCalls(self.ctx)
        self._parts: dict[str, Part] = {
            STATUS: self._status,
            CHECKIN: self.checkins.check_in,
            ANSWER: self.rollcalls.answer,
        }

    @property
    def kinds(self) -> frozenset[str]:
        """The device message kinds this desk takes."""
        return frozenset(self._parts)

    async def take(self, device_id: str, kind: str, payload: bytes) -> DeviceAnswer:
        """Judge one device message and tell the device; the answer (HTTP devices are given it too)."""
        try:
            body = decode(payload, SHAPES[kind])
            if body is None:
                now_s = self.ctx.clock.now()
                detail = f"malformed {kind}"
                answer = await self.ctx.refusals.refuse(device_id, kind, payload, (MALFORMED,), detail, now_s)
            else:
                answer = await self._parts[kind](device_id, body, payload)
        except Unavailable as exc:
            answer = DeviceAnswer(False, f"not taken, retry: {exc.detail}", (STORE_UNAVAILABLE,))
        if not answer.silent:
            self.ctx.send([answer_message(device_id, kind, answer.body())], f"{kind} outcome")
        return answer

    async def run(self) -> None:
        """The desk's timers while the API runs: open roll calls re-armed and fed the picture's moves,
        automatic check-ins following them too."""
        fleet, auto = self.ctx.fleet, self.auto_checkin
        await self.rollcalls.resume()
        unsubscribe = [fleet.subscribe_changes(self.rollcalls.on_change)]
        if auto is not None:
            unsubscribe.append(fleet.subscribe_changes(auto.on_change))
        try:
            await (auto.run() if auto is not None else asyncio.Event().wait())
        finally:
            for undo in unsubscribe:
                undo()
            await self.rollcalls.stop()

    async def _status(self, device_id: str, body: StatusIn, payload: bytes) -> DeviceAnswer:
        return await report_status(self.ctx, device_id, body, payload)
