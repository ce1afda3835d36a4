"""Replies and alarms over HTTP (the twins of the MQTT topics): authenticated like a fix, bounded,
checked for shape, and handed to dispatch; 202 with what dispatch made of them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Annotated, Literal

import msgspec
from aiohttp import web

from ingest.http.auth import DeviceAuth, refresh_if_unknown, secret_of, unauthorized
from ingest.http.fixes import read_body
from ingest.http.problems import problem
from ingest.pipeline import Pipeline
from ingest.ports import DeviceOutcome
from ingest.rules import DISABLED_DEVICE, UNKNOWN_DEVICE

REPLY_PATH = "/ingest/v1/devices/{device_id}/reply"
ALARM_PATH = "/ingest/v1/devices/{device_id}/alarm"


async def device_message(
    pipeline: Pipeline, auth: DeviceAuth, request: web.Request, kind: str
) -> web.Response:
    """A reply or an alarm: authenticated like a fix, bounded, checked for shape, handed to dispatch."""
    device_id = request.match_info["device_id"]
    directory = pipeline.directory
    await refresh_if_unknown(directory, [device_id])
    if not await auth.allows(device_id, secret_of(request)):
        return unauthorized()
    device = directory.get(device_id)
    if device is None and not directory.register_unknown:
        return problem(403, "device refused", [UNKNOWN_DEVICE])
    if device is not None and not device.enabled:
        return problem(403, "device refused", [DISABLED_DEVICE])
    limit = pipeline.settings.max_payload_bytes
    body = await _read_bounded(request, limit)
    if body is None:
        return problem(413, f"{kind} larger than {limit} bytes", [])
    body = body.strip() or b"{}"  # an SOS button may send nothing at all
    try:
        msgspec.json.decode(body, type=_SHAPES[kind])
    except msgspec.DecodeError as exc:  # ValidationError included
        return problem(400, f"malformed {kind}", [], detail=str(exc))
    if not pipeline.forwards_device_messages:
        return problem(503, "no dispatcher attached: device messages are not handled here", [])
    task = pipeline.forward_device_message(device_id, kind, body)
    return await _outcome(task, pipeline.settings.http_durable_timeout_s)


async def _read_bounded(request: web.Request, limit: int) -> bytes | None:
    """The body, or None when it is over `limit` (a declared length over it is refused unread)."""
    if (request.content_length or 0) > limit:
        return None
    body = await read_body(request, limit)
    return None if len(body) > limit else body


async def _outcome(task: Awaitable[DeviceOutcome] | None, timeout_s: float) -> web.Response:
    if task is None:
        return _accepted("forwarded", "handed to dispatch, which reports no outcome")
    try:
        # Shielded: a slow dispatcher still finishes the work after the device has had its answer.
        outcome = await asyncio.wait_for(asyncio.shield(task), timeout_s)
    except TimeoutError:
        return _accepted("forwarded", f"handed to dispatch, no outcome within {timeout_s:g} s")
    except Exception:  # logged by whoever started the task
        return problem(500, "dispatch failed on this message", [])
    return _accepted("taken" if outcome.ok else "refused", outcome.detail)


def _accepted(outcome: str, detail: str) -> web.Response:
    return web.json_response({"outcome": outcome, "detail": detail}, status=202)


class _ReplyIn(msgspec.Struct):
    """A device's answer to an offer (the MQTT reply topic's payload)."""

    offer_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    answer: Literal["accept", "decline"]


class _AlarmIn(msgspec.Struct):
    """An SOS: where (else the unit's last position), and what."""

    lon: Annotated[float, msgspec.Meta(ge=-180.0, le=180.0)] | None = None
    lat: Annotated[float, msgspec.Meta(ge=-90.0, le=90.0)] | None = None
    description: Annotated[str, msgspec.Meta(max_length=4000)] = ""


_SHAPES: dict[str, type[msgspec.Struct]] = {"reply": _ReplyIn, "alarm": _AlarmIn}
