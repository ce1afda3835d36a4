"""HTTP ingestion for phones that cannot speak MQTT: OsmAnd / Traccar Client and OwnTracks HTTP mode, and
the devices' answers to offers and SOS alarms.

Same decoding, validation, storage and guarantees as MQTT; the status code tells the device what became
of its fix, so its own buffer does the rest:

- 200: stored (committed in the database, or in the durable spool). OwnTracks gets `[]` (no commands).
- 400 / 403: rejected, in the API's problem shape (`application/problem+json`: `type`, `title`, `status`,
  `detail`, `instance`, `invalid_params` naming each field and why) plus every dead-letter reason in
  `reasons`; 403 for unknown or disabled devices, and for devices without credentials (`no_credentials`:
  issue them with `POST /v1/devices/{id}/credentials`; accepted only in open mode,
  `register_unknown_devices`).
- 401: the device has credentials and did not present its secret (HTTP basic password, `?key=`, or
  `Authorization: Bearer`); the basic-auth user name is not checked (OwnTracks sends its user there).
- 503: not durable in time (database down and spool full, or overloaded): retry later.

Device messages (`POST /ingest/v1/devices/{device_id}/reply`, `/alarm`, `/status`, `/checkin`, `/answer`,
the HTTP twins of the MQTT topics; an OwnTracks id `user/device` as `user%2Fdevice` or as two segments,
`/ingest/v1/devices/{user}/{device}/<kind>`) are authenticated the same way (401, 403), limited to
`max_payload_bytes` (413), checked for shape (400), and handed to dispatch through
`Pipeline.forward_device_message`; a refused one is dead-lettered with its reason. 202 answers with what
dispatch made of them: `{"outcome": "taken" | "refused" | "forwarded", "detail", "reasons"}` ("forwarded":
no outcome within `http_durable_timeout_s`, or none reported); 503 when no dispatcher is attached (the
`ingest` role).

With OUTPOST_BROKER_LOGIN_TOKEN set, `POST /ingest/v1/broker/login` answers EMQX's HTTP authenticator
from the registry (ingest.http.broker_login).

The composition root mounts `routes(pipeline)`; the API's bearer-token middleware skips `/ingest/`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from ingest.decode import decode_owntracks_http, decode_traccar_http
from ingest.http.auth import DeviceAuth
from ingest.http.broker_login import LOGIN_PATH, login_handler, login_off_handler
from ingest.http.devices import device_message, device_path, owntracks_device_path
from ingest.http.fixes import OSMAND_PATH, OWNTRACKS_PATH, read_body, submit_fixes
from ingest.http.openapi import OPENAPI_COMPONENTS, OPENAPI_PATHS
from ingest.pipeline import Pipeline
from schemas.topics import DEVICE_MESSAGE_KINDS

__all__ = ["OPENAPI_PATHS", "DeviceAuth", "IngestRoutes", "routes"]


def routes(pipeline: Pipeline, *, clock: Callable[[], float] = time.time) -> web.RouteTableDef:
    """The ingestion routes under /ingest/, bound to `pipeline`."""
    settings = pipeline.settings
    auth = DeviceAuth(pipeline.directory, settings.http_auth_cache_s)
    limit = settings.max_payload_bytes
    table = web.RouteTableDef()

    @table.get(OSMAND_PATH)
    @table.post(OSMAND_PATH)
    async def osmand(request: web.Request) -> web.StreamResponse:
        received_s = clock()
        body = await read_body(request, limit)
        query = dict(request.query)
        decoded = decode_traccar_http(
            query, body, request.headers.get("Content-Type"), max_payload_bytes=limit
        )
        raw = request.query_string.encode() + (b"\n" + body if body else b"")
        return await submit_fixes(pipeline, auth, request, decoded, raw, received_s, owntracks=False)

    @table.post(OWNTRACKS_PATH)
    async def owntracks(request: web.Request) -> web.StreamResponse:
        received_s = clock()
        body = await read_body(request, limit)
        user = request.headers.get("X-Limit-U") or request.query.get("u")
        device = request.headers.get("X-Limit-D") or request.query.get("d")
        decoded = decode_owntracks_http(user, device, body, max_payload_bytes=limit)
        return await submit_fixes(pipeline, auth, request, decoded, body, received_s, owntracks=True)

    for kind in DEVICE_MESSAGE_KINDS:
        handler = _device_handler(pipeline, auth, kind, clock)
        table.post(device_path(kind))(handler)
        table.post(owntracks_device_path(kind))(handler)
    if settings.broker_login_token:  # EMQX's authenticator
        table.post(LOGIN_PATH)(login_handler(pipeline, auth, settings.broker_login_token, clock))
    else:  # off: 404, and a warning naming the setting if a broker asks anyway
        table.post(LOGIN_PATH)(login_off_handler())
    return table


def _device_handler(
    pipeline: Pipeline, auth: DeviceAuth, kind: str, clock: Callable[[], float]
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        return await device_message(pipeline, auth, request, kind, clock())

    handle.__name__ = f"device_{kind}"
    return handle


class IngestRoutes:
    """The device endpoints (/ingest/…) as a plugin of the dispatcher's API (its `ApiPlugin` shape)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.routes = routes(pipeline)
        self.openapi_paths = OPENAPI_PATHS
        self.openapi_components = OPENAPI_COMPONENTS

    def setup(self, app: web.Application) -> None:
        """Nothing to attach: the pipeline runs under the ingest task."""
