"""Devices: registry CRUD and credentials (a secret shown once, stored hashed)."""

from __future__ import annotations

from aiohttp import web

from dispatch.blocking import run_db
from dispatch.fleet import Fleet
from dispatch.keys import CONTEXT_KEY, ENGINE_KEY
from dispatch.openapi import DocumentedRoutes
from dispatch.problems import NotFound
from dispatch.routes import models, present
from dispatch.routes.params import Integer, PathId, encode
from dispatch.routes.resources import After, Resource, add_edit_routes
from schemas.credentials import hash_secret, new_secret
from store import registry

DEVICE_ID = PathId("id", "the device's id")
api = DocumentedRoutes("devices", path_params=[DEVICE_ID])
LIMIT = Integer("limit", "page size", default=500, minimum=1, maximum=5000)
DEVICES = Resource(
    "device", DEVICE_ID, registry.DEVICE_QUERIES, Fleet.track_device, present.device_out, tells_gateway=True
)


add_edit_routes(
    api, DEVICES, (models.DeviceIn, models.DevicePatch, models.DeviceOut), kept="their fixes refer to them"
)


@api.route("GET", "/v1/devices", role="viewer", params=[After("devices"), LIMIT], response=models.DeviceList)
async def list_devices(request: web.Request) -> web.Response:
    """List devices

    Devices by id, paged with `after`/`limit`."""
    page, next_after = await DEVICES.page(request, LIMIT.get(request))
    return encode(models.DeviceList(devices=[present.device_out(d) for d in page], next_after=next_after))


@api.route("GET", "/v1/devices/{id}", role="viewer", response=models.DeviceOut)
async def get_device(request: web.Request) -> web.Response:
    """A device

    A device's registry record (its location is read through its unit)."""
    return encode(present.device_out(await DEVICES.find(request, DEVICE_ID.get(request))))


@api.route("POST", "/v1/devices/{id}/credentials", role="admin", response=models.CredentialsOut, status=201)
async def issue_credentials(request: web.Request) -> web.Response:
    """Issue the device's secret (shown once)

    A new random secret for MQTT (username = device id) and HTTP ingestion. It replaces any previous
    secret, is shown in this answer only, and is stored as a scrypt hash."""
    device_id = DEVICE_ID.get(request)
    await DEVICES.find(request, device_id)
    secret = new_secret()
    # scrypt is deliberately slow (~50 ms): keep it off the event loop.
    digest = await run_db(hash_secret, secret)
    if not await run_db(registry.set_device_credentials, request.app[ENGINE_KEY], device_id, digest):
        raise NotFound(f"no device {device_id}")
    await request.app[CONTEXT_KEY].devices_changed()  # the old secret stops working at once
    response = encode(
        models.CredentialsOut(device_id=device_id, username=device_id, secret=secret), status=201
    )
    response.headers["Cache-Control"] = "no-store"
    return response
