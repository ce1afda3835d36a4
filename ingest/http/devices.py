"""Device messages over HTTP (the twins of the MQTT topics: replies, alarms, duty status, check-ins,
roll-call answers): authenticated like a fix, bounded, checked for shape, and handed to dispatch; 202 with
what dispatch made of them. A refused message is dead-lettered with its reason, as over MQTT."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from aiohttp import web

from ingest.decode.reasons import INVALID_DEVICE_ID
from ingest.device_messages import MALFORMED_MESSAGE, refusal
from ingest.http.auth import DeviceAuth, refresh_if_unsure, secret_of, unauthorized
from ingest.http.fixes import read_body
from ingest.http.problems import field_of, problem
from ingest.pipeline import Pipeline
from ingest.ports import DeviceOutcome
from ingest.rules import NO_CREDENTIALS
from schemas.topics import ALARM, REPLY


def device_path(kind: str) -> str:
    """`/ingest/v1/devices/{device_id}/<kind>`, the HTTP twin of the MQTT topic of `kind`."""
    return f"/ingest/v1/devices/{{device_id}}/{kind}"


def owntracks_device_path(kind: str) -> str:
    """`/ingest/v1/devices/{user}/{device}/<kind>`: the same for an OwnTracks id `user/device` (which the
    one-segment path takes too, written `user%2Fdevice`)."""
    return f"/ingest/v1/devices/{{user}}/{{device}}/{kind}"


def device_id_of(request: web.Request) -> str:
    """The device id a device-message path names: `{device_id}`, or OwnTracks' `{user}/{device}`."""
    info = request.match_info
    return info["device_id"] if "device_id" in info else f"{info['user']}/{info['device']}"


REPLY_PATH = device_path(REPLY)
ALARM_PATH = device_path(ALARM)


async def device_message(
    pipeline: Pipeline, auth: DeviceAuth, request: web.Request, kind: str, received_s: float
) -> web.Response:
    """A device message: authenticated like a fix, bounded, checked for shape, handed to dispatch."""
    device_id = device_id_of(request)
    directory = pipeline.directory
    await refresh_if_unsure(directory, [device_id])
    if not await auth.allows(device_id, secret_of(request)):
        return unauthorized(request)
    limit = pipeline.settings.max_payload_bytes
    body = await _read_bounded(request, limit)
    if body is None:
        return problem(
            request,
            413,
            f"{kind} larger than {limit} bytes (OUTPOST_MAX_PAYLOAD_BYTES)",
            invalid_params=[{"name": "body", "reason": f"larger than {limit} bytes"}],
        )
    body = body.strip() or b"{}"  # an SOS button may send nothing at all
    refused = refusal(directory, device_id, kind, body, strict=True, allow_unknown=directory.register_unknown)
    if refused is not None:
        reason, detail = refused
        pipeline.refuse_device_message(f"http:{request.path}", body, reason, device_id, received_s)
        field = field_of(MALFORMED_MESSAGE, detail) if reason == MALFORMED_MESSAGE else "device_id"
        invalid = [{"name": field, "reason": f"{reason}: {detail}"}]
        if reason in (MALFORMED_MESSAGE, INVALID_DEVICE_ID):
            return problem(
                request,
                400,
                detail,
                slug="invalid-parameter",
                reasons=[reason],
                invalid_params=invalid,
            )
        return problem(
            request,
            403,
            f"device refused: {reason}" + (f" ({detail})" if reason == NO_CREDENTIALS else ""),
            slug="forbidden",
            reasons=[reason],
            invalid_params=invalid,
        )
    if not pipeline.forwards_device_messages:
        return problem(
            request, 503, "no dispatcher attached: device messages are not handled here", slug="unavailable"
        )
    task = pipeline.forward_device_message(device_id, kind, body)
    return await _outcome(request, task, pipeline.settings.http_durable_timeout_s)


async def _read_bounded(request: web.Request, limit: int) -> bytes | None:
    """The body, or None when it is over `limit` (a declared length over it is refused unread)."""
    if (request.content_length or 0) > limit:
        return None
    body = await read_body(request, limit)
    return None if len(body) > limit else body


async def _outcome(
    request: web.Request, task: Awaitable[DeviceOutcome] | None, timeout_s: float
) -> web.Response:
    if task is None:
        return _accepted("forwarded", "handed to dispatch, which reports no outcome")
    try:
        # Shielded: a slow dispatcher still finishes the work after the device has had its answer.
        outcome = await asyncio.wait_for(asyncio.shield(task), timeout_s)
    except TimeoutError:
        return _accepted("forwarded", f"handed to dispatch, no outcome within {timeout_s:g} s")
    except Exception:  # logged by whoever started the task
        return problem(request, 500, "dispatch failed on this message; see the server log", slug="internal")
    reasons = list(getattr(outcome, "reasons", ()))
    return _accepted("taken" if outcome.ok else "refused", outcome.detail, reasons)


def _accepted(outcome: str, detail: str, reasons: list[str] | None = None) -> web.Response:
    body: dict[str, object] = {"outcome": outcome, "detail": detail}
    if reasons:
        body["reasons"] = reasons
    return web.json_response(body, status=202)
