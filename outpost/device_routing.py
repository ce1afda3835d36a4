"""Which part of the API takes each device message (over MQTT or HTTP): replies to offers and SOS alarms
go to the incident loop, status reports, check-ins and roll-call answers to the field desk. Among `outpost
api` replicas only the leader acts on them (dispatch.leader)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from dispatch.field.desk import FieldDesk
from dispatch.fleet import Fleet
from dispatch.incidents.alarms import raise_alarm
from dispatch.incidents.notify import outcome_message
from dispatch.incidents.service import DeviceReply, IncidentService
from dispatch.leader import Leadership
from ingest.channel import DeviceChannel
from ingest.ports import DeviceOutcome, OnDeviceMessage
from outpost.supervise import Supervisor

log = logging.getLogger(__name__)


def route_device_messages(
    supervisor: Supervisor,
    incidents: IncidentService,
    fleet: Fleet,
    desk: FieldDesk,
    channel: DeviceChannel,
    leadership: Leadership | None,
) -> OnDeviceMessage:
    """Device messages arriving over MQTT or HTTP: replies to offers and SOS alarms to the incident
    loop, status reports, check-ins and roll-call answers to the field desk; the future of each outcome
    is returned so HTTP can tell the device, which also hears it over MQTT."""

    def handle(device_id: str, kind: str, payload: bytes) -> asyncio.Future[DeviceOutcome] | None:
        if leadership is not None and not leadership.leading:
            return None  # device messages are the leader's: it hears them on its own session
        if kind in desk.kinds:
            return supervisor.spawn(desk.take(device_id, kind, payload), f"{kind}-{device_id}")
        if kind == "reply":
            outcome = incidents.handle_device_reply(device_id, payload)
        elif kind == "alarm":
            outcome = raise_alarm(incidents, fleet, device_id, payload)
        else:
            return None
        return supervisor.spawn(_answered(device_id, kind, outcome, channel), f"{kind}-{device_id}")

    return handle


async def _answered(
    device_id: str, kind: str, outcome: Awaitable[DeviceReply], channel: DeviceChannel
) -> DeviceReply:
    """The outcome, sent to the device's offers topic and logged when refused."""
    reply = await outcome
    if not reply.ok:
        log.warning("device %s refused: %s", kind, reply.detail, extra={"device_id": device_id})
    message = outcome_message(device_id, kind, reply.ok, reply.detail, reply.offer_id)
    channel.send([message], f"{kind} outcome")
    return reply
