"""Commands to a device over HTTP (dispatchers): `request_fix` (report a position now) and `set_interval`
(report every `interval_s`), published to `outpost/v1/devices/{id}/cmd`; an OwnTracks phone is also sent
its own `reportLocation` command for `request_fix`. Audited."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web

from dispatch.auth import principal
from dispatch.field.api import FIELD_KEY, api
from dispatch.field.downlink import command_messages
from dispatch.keys import AUDIT_KEY
from dispatch.problems import Conflict, InvalidParameter
from dispatch.routes.devices import DEVICE_ID, DEVICES
from dispatch.routes.params import encode, read_body
from dispatch.routes.resources import clock_now
from schemas.topics import CMD, device_topic


class CommandIn(msgspec.Struct, forbid_unknown_fields=True):
    """A command: `request_fix`, or `set_interval` with `interval_s` (1 s to a day)."""

    command: Literal["request_fix", "set_interval"]
    interval_s: Annotated[int, msgspec.Meta(ge=1, le=86400)] | None = None


class CommandOut(msgspec.Struct):
    """The command as sent: its id (the device echoes it), and the topics it went to."""

    command_id: str
    device_id: str
    command: str
    interval_s: int | None
    sent_at: datetime
    topics: list[str]


@api.route(
    "POST",
    "/v1/devices/{id}/commands",
    role="dispatcher",
    params=[DEVICE_ID],
    body=CommandIn,
    response=CommandOut,
    status=202,
    errors=[409],
)
async def send_command(request: web.Request) -> web.Response:
    """Send a device a command (request_fix, set_interval)

    Publish the command to the device (QoS 1; a device offline gets it when it reconnects with its
    session). 409 for a disabled device."""
    body = await read_body(request, CommandIn)
    device = await DEVICES.find(request, DEVICE_ID.get(request))
    if not device.enabled:
        raise Conflict(f"device {device.id} is disabled", current_state={"enabled": False})
    if (body.command == "set_interval") != (body.interval_s is not None):
        raise InvalidParameter("body.interval_s", "required with set_interval, and only with it")
    sent_at = clock_now(request)
    command_id = str(uuid.uuid4())
    fields: dict[str, Any] = {
        "command": body.command,
        "command_id": command_id,
        "sent_at": sent_at.isoformat(),
    }
    if body.interval_s is not None:
        fields["interval_s"] = body.interval_s
    messages = command_messages(device.id, fields)
    if body.command != "request_fix":  # reportLocation is OwnTracks' request_fix, nothing else
        messages = [m for m in messages if m[0] == device_topic(device.id, CMD)]
    request.app[FIELD_KEY].ctx.send(messages, f"command {body.command}")
    actor = principal(request).actor
    request.app[AUDIT_KEY].record(actor, "device_command", f"device:{device.id}", dict(fields))
    out = CommandOut(command_id, device.id, body.command, body.interval_s, sent_at, [t for t, _ in messages])
    return encode(out, status=202)
