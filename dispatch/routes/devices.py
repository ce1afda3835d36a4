"""Devices: registry CRUD and credentials (a secret shown once, stored hashed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from dispatch.blocking import run_db
from dispatch.keys import CLOCK_KEY, ENGINE_KEY, FLEET_KEY
from dispatch.openapi import DocumentedRoutes
from dispatch.problems import Conflict, NotFound
from dispatch.routes import models, present
from dispatch.routes.params import Integer, PathId, encode, read_body
from schemas.credentials import hash_secret, new_secret
from store import registry

api = DocumentedRoutes("devices")

DEVICE_ID = PathId("id", "the device's id")
LIMIT = Integer("limit", "page size", default=500, minimum=1, maximum=5000)


class _After:
    def openapi(self) -> dict[str, object]:
        return {
            "name": "after",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "list devices with ids after this one (the previous page's next_after)",
        }


async def _device_or_404(request: web.Request, device_id: str) -> registry.Device:
    record = await run_db(registry.get_device, request.app[ENGINE_KEY], device_id)
    if record is None:
        raise NotFound(f"no device {device_id}")
    return record


@api.route(
    "POST",
    "/v1/devices",
    summary="Register a device",
    role="admin",
    body=models.DeviceIn,
    response=models.DeviceOut,
    status=201,
    errors=[409],
)
async def create_device(request: web.Request) -> web.Response:
    """Register a body camera, phone, radio or tracker. Issue its credentials with
    POST /v1/devices/{id}/credentials, and bind it to a unit with POST /v1/units/{id}/devices."""
    body = await read_body(request, models.DeviceIn)
    now = datetime.fromtimestamp(request.app[CLOCK_KEY].now(), UTC)
    try:
        record = await run_db(
            registry.insert_device,
            request.app[ENGINE_KEY],
            id=body.id,
            kind=body.kind,
            priority=body.priority,
            enabled=body.enabled,
            now=now,
        )
    except registry.Duplicate as exc:
        raise Conflict(str(exc), current_state={"id": body.id}) from None
    request.app[FLEET_KEY].track_device(record)
    return encode(present.device_out(record), status=201)


@api.route(
    "GET",
    "/v1/devices",
    summary="List devices",
    role="viewer",
    params=[_After(), LIMIT],
    response=models.DeviceList,
)
async def list_devices(request: web.Request) -> web.Response:
    """Devices by id, paged with `after`/`limit`."""
    limit = LIMIT.get(request)
    records = await run_db(
        registry.list_devices, request.app[ENGINE_KEY], after_id=request.query.get("after"), limit=limit + 1
    )
    page = records[:limit]
    more = len(records) > limit
    return encode(
        models.DeviceList(
            devices=[present.device_out(d) for d in page], next_after=page[-1].id if more and page else None
        )
    )


@api.route(
    "GET",
    "/v1/devices/{id}",
    summary="A device",
    role="viewer",
    params=[DEVICE_ID],
    response=models.DeviceOut,
    errors=[404],
)
async def get_device(request: web.Request) -> web.Response:
    """A device's registry record (its location is read through its unit)."""
    return encode(present.device_out(await _device_or_404(request, DEVICE_ID.get(request))))


@api.route(
    "PATCH",
    "/v1/devices/{id}",
    summary="Change a device (enabled=false disables it)",
    role="admin",
    params=[DEVICE_ID],
    body=models.DevicePatch,
    response=models.DeviceOut,
    errors=[404],
)
async def patch_device(request: web.Request) -> web.Response:
    """Change kind, priority or enabled. A disabled device no longer moves its unit."""
    body = await read_body(request, models.DevicePatch)
    return await _change_device(request, **models.set_fields(body))


@api.route(
    "DELETE",
    "/v1/devices/{id}",
    summary="Disable a device",
    role="admin",
    params=[DEVICE_ID],
    response=models.DeviceOut,
    errors=[404],
)
async def disable_device(request: web.Request) -> web.Response:
    """Devices are never deleted (their fixes refer to them): this disables the device."""
    return await _change_device(request, enabled=False)


async def _change_device(request: web.Request, **changes: Any) -> web.Response:
    """Store the changes, let the live picture follow, answer with the record."""
    device_id = DEVICE_ID.get(request)
    record = await run_db(registry.update_device, request.app[ENGINE_KEY], device_id, **changes)
    if record is None:
        raise NotFound(f"no device {device_id}")
    request.app[FLEET_KEY].track_device(record)
    return encode(present.device_out(record))


@api.route(
    "POST",
    "/v1/devices/{id}/credentials",
    summary="Issue the device's secret (shown once)",
    role="admin",
    params=[DEVICE_ID],
    response=models.CredentialsOut,
    status=201,
    errors=[404],
)
async def issue_credentials(request: web.Request) -> web.Response:
    """A new random secret for MQTT (username = device id) and HTTP ingestion. It replaces any previous
    secret, is shown in this answer only, and is stored as a scrypt hash."""
    device_id = DEVICE_ID.get(request)
    await _device_or_404(request, device_id)
    secret = new_secret()
    # scrypt is deliberately slow (~50 ms): keep it off the event loop.
    digest = await run_db(hash_secret, secret)
    if not await run_db(registry.set_device_credentials, request.app[ENGINE_KEY], device_id, digest):
        raise NotFound(f"no device {device_id}")
    response = encode(
        models.CredentialsOut(device_id=device_id, username=device_id, secret=secret), status=201
    )
    response.headers["Cache-Control"] = "no-store"
    return response
