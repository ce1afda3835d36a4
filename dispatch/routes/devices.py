"""Devices: registry CRUD and credentials (a secret shown once, stored hashed).

A device is created with its credentials (unless the request asks otherwise): a device without them is
refused by the gateway (`no_credentials`), so that knowing an id is never enough to speak for a device.
"""

from __future__ import annotations

import inspect

import msgspec
from aiohttp import web

from dispatch.blocking import run_db
from dispatch.fleet import Fleet
from dispatch.keys import CONTEXT_KEY, ENGINE_KEY, FLEET_KEY
from dispatch.openapi import DocumentedRoutes
from dispatch.problems import Conflict, NotFound, Unavailable, Unprocessable
from dispatch.routes import models, present
from dispatch.routes.models import set_fields
from dispatch.routes.params import Integer, PathId, encode, read_body
from dispatch.routes.resources import After, Resource, clock_now
from schemas.accounts import RESERVED_PREFIXES, SERVICE_ACCOUNTS, is_reserved
from schemas.credentials import hash_secret, new_secret
from store import registry

DEVICE_ID = PathId("id", "the device's id")
api = DocumentedRoutes("devices", path_params=[DEVICE_ID])
LIMIT = Integer("limit", "page size", default=500, minimum=1, maximum=5000)
DEVICES = Resource(
    "device", DEVICE_ID, registry.DEVICE_QUERIES, Fleet.track_device, present.device_out, tells_gateway=True
)
_RESERVED_RULE = (
    f"is reserved for the broker's service accounts ({', '.join(sorted(SERVICE_ACCOUNTS))}, "
    f"and ids beginning with {' or '.join(f'`{p}`' for p in RESERVED_PREFIXES)}): choose another id"
)


@api.route(
    "POST",
    "/v1/devices",
    role="admin",
    body=models.DeviceIn,
    response=models.DeviceCreated,
    status=201,
    errors=[409, 422],
    summary="Register a device",
    description=inspect.getdoc(models.DeviceIn) or "",
)
async def create_device(request: web.Request) -> web.Response:
    """Register a device, with its credentials unless `"credentials": false` (422: a reserved id)."""
    body = await read_body(request, models.DeviceIn)
    if is_reserved(body.id):
        reason = f"{body.id!r} {_RESERVED_RULE}"
        raise Unprocessable(f"body.id: {reason}", invalid_params=[{"name": "body.id", "reason": reason}])
    fields = msgspec.structs.asdict(body)
    secret = new_secret() if fields.pop("credentials") else None
    # scrypt is deliberately slow (~50 ms): keep it off the event loop.
    digest = await run_db(hash_secret, secret) if secret is not None else None
    try:
        record = await run_db(
            registry.insert_device,
            request.app[ENGINE_KEY],
            **fields,
            credentials_hash=digest,
            now=clock_now(request),
        )
    except registry.Duplicate as exc:
        raise Conflict(str(exc), current_state={"id": body.id}) from None
    issue = request.app[CONTEXT_KEY].credentials_issued
    told = secret is None or digest is None or await issue(record.id, secret, digest, record.enabled)
    await _follow(request, record)
    if not told:
        raise _broker_did_not_take(record.id)
    issued = models.CredentialsOut(record.id, record.id, secret) if secret is not None else None
    created = msgspec.convert(record, models.DeviceCreated, from_attributes=True)
    response = encode(msgspec.structs.replace(created, credentials=issued), status=201)
    response.headers["Cache-Control"] = "no-store"
    return response


@api.route(
    "PATCH",
    "/v1/devices/{id}",
    role="admin",
    body=models.DevicePatch,
    response=models.DeviceOut,
    summary="Change a device (enabled=false disables it)",
    description=inspect.getdoc(models.DevicePatch) or "",
)
async def patch_device(request: web.Request) -> web.Response:
    """Change some of kind, priority, enabled."""
    return await DEVICES.change(request, **set_fields(await read_body(request, models.DevicePatch)))


@api.route("DELETE", "/v1/devices/{id}", role="admin", response=models.DeviceOut)
async def disable_device(request: web.Request) -> web.Response:
    """Disable a device

    Devices are never deleted (their fixes refer to them): this disables the device."""
    return await DEVICES.change(request, enabled=False)


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
    secret, is shown in this answer only, and is stored as a scrypt hash. A device registered with
    `"credentials": false` is refused until this has been called."""
    device_id = DEVICE_ID.get(request)
    record = await DEVICES.find(request, device_id)
    secret = new_secret()
    digest = await run_db(hash_secret, secret)
    if not await run_db(registry.set_device_credentials, request.app[ENGINE_KEY], device_id, digest):
        raise NotFound(f"no device {device_id}")
    told = await request.app[CONTEXT_KEY].credentials_issued(device_id, secret, digest, record.enabled)
    await request.app[CONTEXT_KEY].devices_changed()  # the old secret stops working at once
    if not told:
        raise _broker_did_not_take(device_id)
    response = encode(
        models.CredentialsOut(device_id=device_id, username=device_id, secret=secret), status=201
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _broker_did_not_take(device_id: str) -> Unavailable:
    """The external broker did not take a new secret: it is then never shown (the broker disables the
    device's older login as soon as it answers again, see ingest.broker_registry)."""
    return Unavailable(
        f"device {device_id}'s new secret is stored but the MQTT broker did not take it "
        "(OUTPOST_MQTT_ADMIN_URL): the device cannot log in over MQTT; issue its credentials again "
        f"(POST /v1/devices/{device_id}/credentials) once the broker answers"
    )


async def _follow(request: web.Request, record: registry.Device) -> None:
    """The live picture follows the new device, and the gateway knows it (and its credentials) at once."""
    DEVICES.track(request.app[FLEET_KEY], record)
    await request.app[CONTEXT_KEY].devices_changed()
