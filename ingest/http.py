"""HTTP ingestion for phones that cannot speak MQTT: OsmAnd / Traccar Client and OwnTracks HTTP mode, and
the devices' answers to offers and SOS alarms.

Same decoding, validation, storage and guarantees as MQTT; the status code tells the device what became
of its fix, so its own buffer does the rest:

- 200: stored (committed in the database, or in the durable spool). OwnTracks gets `[]` (no commands).
- 400 / 403: rejected, with every reason (`application/problem+json`); 403 for unknown or disabled devices.
- 401: the device has credentials and did not present its secret (HTTP basic password, `?key=`, or
  `Authorization: Bearer`); the basic-auth user name is not checked (OwnTracks sends its user there).
- 503: not durable in time (database down and spool full, or overloaded): retry later.

Replies and alarms (`POST /ingest/v1/devices/{device_id}/reply` and `/alarm`, the HTTP twins of the MQTT
topics) are authenticated the same way (401, 403), limited to `max_payload_bytes` (413), checked for shape
(400), and handed to dispatch through `Pipeline.forward_device_message`. 202 answers with what dispatch made
of them: `{"outcome": "taken" | "refused" | "forwarded", "detail"}` ("forwarded": no outcome within
`http_durable_timeout_s`, or none reported); 503 when no dispatcher is attached (the `ingest` role).

The composition root mounts `routes(pipeline)`; the API's bearer-token middleware skips `/ingest/`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web

from ingest import metrics
from ingest.decode import Decoded, decode_owntracks_http, decode_traccar_http
from ingest.devices import DeviceDirectory
from ingest.pipeline import Pipeline, Submission
from ingest.ports import DeviceOutcome
from ingest.rules import DISABLED_DEVICE, UNKNOWN_DEVICE
from schemas.credentials import verify_secret

OSMAND_PATH = "/ingest/osmand"
OWNTRACKS_PATH = "/ingest/owntracks"
REPLY_PATH = "/ingest/v1/devices/{device_id}/reply"
ALARM_PATH = "/ingest/v1/devices/{device_id}/alarm"
_DEVICE_REASONS = {UNKNOWN_DEVICE, DISABLED_DEVICE}
_AUTH_CACHE_MAX = 10000


class DeviceAuth:
    """Checks device secrets against the directory's hashes; successes are cached (scrypt is slow)."""

    def __init__(
        self, directory: DeviceDirectory, cache_s: float, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._directory = directory
        self._cache_s = cache_s
        self._monotonic = monotonic
        self._verified: dict[tuple[str, str, str], float] = {}  # (device, secret digest, hash) → expiry

    async def allows(self, device_id: str, secret: str | None) -> bool:
        """Whether `secret` opens `device_id`. Until credentials are issued for a device its id alone
        identifies it, as with Traccar Client; production issues credentials for every device."""
        stored = self._directory.secret_hash(device_id)
        if stored is None:
            return True
        if not secret:
            return False
        # The stored hash is part of the key: new credentials void cached successes of the old secret.
        key = (device_id, hashlib.sha256(secret.encode()).hexdigest(), stored)
        now = self._monotonic()
        if self._verified.get(key, 0.0) > now:
            return True
        if not await asyncio.to_thread(verify_secret, secret, stored):
            return False
        if len(self._verified) >= _AUTH_CACHE_MAX:
            self._verified.clear()
        self._verified[key] = now + self._cache_s
        return True


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
        body = await _read_body(request, limit)
        query = dict(request.query)
        decoded = decode_traccar_http(
            query, body, request.headers.get("Content-Type"), max_payload_bytes=limit
        )
        raw = request.query_string.encode() + (b"\n" + body if body else b"")
        return await _ingest(pipeline, auth, request, decoded, raw, received_s, owntracks=False)

    @table.post(OWNTRACKS_PATH)
    async def owntracks(request: web.Request) -> web.StreamResponse:
        received_s = clock()
        body = await _read_body(request, limit)
        user = request.headers.get("X-Limit-U") or request.query.get("u")
        device = request.headers.get("X-Limit-D") or request.query.get("d")
        decoded = decode_owntracks_http(user, device, body, max_payload_bytes=limit)
        return await _ingest(pipeline, auth, request, decoded, body, received_s, owntracks=True)

    @table.post(REPLY_PATH)
    async def reply(request: web.Request) -> web.Response:
        return await _device_message(pipeline, auth, request, "reply")

    @table.post(ALARM_PATH)
    async def alarm(request: web.Request) -> web.Response:
        return await _device_message(pipeline, auth, request, "alarm")

    return table


async def _read_body(request: web.Request, limit: int) -> bytes:
    # One byte over the limit is enough for the decoder to say too_large; the rest is never buffered.
    return await request.content.read(limit + 1)


async def _ingest(
    pipeline: Pipeline,
    auth: DeviceAuth,
    request: web.Request,
    decoded: Decoded,
    raw: bytes,
    received_s: float,
    *,
    owntracks: bool,
) -> web.StreamResponse:
    device_ids = list(dict.fromkeys(c.device_id for c in decoded.candidates))
    await _refresh_if_unknown(pipeline.directory, device_ids)
    for device_id in device_ids:
        if not await auth.allows(device_id, _secret(request)):
            return _unauthorized()
    outcome = await pipeline.submit(f"http:{request.path}", raw, decoded, received_s)
    return _respond(outcome, owntracks=owntracks)


def _respond(outcome: Submission, *, owntracks: bool) -> web.StreamResponse:
    if outcome.accepted and not outcome.durable:
        return _problem(503, "not stored yet: retry later", [], headers={"Retry-After": "5"})
    if outcome.rejected and not outcome.accepted:
        reasons = sorted({r for reasons in outcome.rejected for r in reasons})
        status = 403 if reasons and set(reasons) <= _DEVICE_REASONS else 400
        return _problem(status, "fix rejected", reasons)
    if not outcome.accepted and not outcome.durable:
        return _problem(503, "overloaded: retry later", [], headers={"Retry-After": "5"})
    return web.json_response([]) if owntracks else web.Response(text="OK")


async def _device_message(
    pipeline: Pipeline, auth: DeviceAuth, request: web.Request, kind: str
) -> web.Response:
    """A reply or an alarm: authenticated like a fix, bounded, checked for shape, handed to dispatch."""
    device_id = request.match_info["device_id"]
    directory = pipeline.directory
    await _refresh_if_unknown(directory, [device_id])
    if not await auth.allows(device_id, _secret(request)):
        return _unauthorized()
    device = directory.get(device_id)
    if device is None and not directory.register_unknown:
        return _problem(403, "device refused", [UNKNOWN_DEVICE])
    if device is not None and not device.enabled:
        return _problem(403, "device refused", [DISABLED_DEVICE])
    limit = pipeline.settings.max_payload_bytes
    body = await _read_bounded(request, limit)
    if body is None:
        return _problem(413, f"{kind} larger than {limit} bytes", [])
    body = body.strip() or b"{}"  # an SOS button may send nothing at all
    try:
        msgspec.json.decode(body, type=_SHAPES[kind])
    except msgspec.DecodeError as exc:  # ValidationError included
        return _problem(400, f"malformed {kind}", [], detail=str(exc))
    if not pipeline.forwards_device_messages:
        return _problem(503, "no dispatcher attached: device messages are not handled here", [])
    task = pipeline.forward_device_message(device_id, kind, body)
    return await _outcome(task, pipeline.settings.http_durable_timeout_s)


async def _read_bounded(request: web.Request, limit: int) -> bytes | None:
    """The body, or None when it is over `limit` (a declared length over it is refused unread)."""
    if (request.content_length or 0) > limit:
        return None
    body = await _read_body(request, limit)
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
        return _problem(500, "dispatch failed on this message", [])
    return _accepted("taken" if outcome.ok else "refused", outcome.detail)


def _accepted(outcome: str, detail: str) -> web.Response:
    return web.json_response({"outcome": outcome, "detail": detail}, status=202)


async def _refresh_if_unknown(directory: DeviceDirectory, device_ids: Iterable[str]) -> None:
    """Reload the directory (rate-limited) when a device is unknown: it may have been registered a moment
    ago, with credentials that must be checked before anything it sent is taken."""
    if any(directory.get(d) is None for d in device_ids) and directory.miss_refresh_due():
        await directory.load()


def _unauthorized() -> web.Response:
    metrics.UNAUTHORIZED.inc()
    return _problem(
        401, "device secret missing or wrong", [], headers={"WWW-Authenticate": 'Basic realm="outpost"'}
    )


def _secret(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return None
    if scheme.lower() == "bearer":
        return value.strip() or None
    return request.query.get("key")


def _problem(
    status: int,
    title: str,
    reasons: list[str],
    headers: dict[str, str] | None = None,
    *,
    detail: str | None = None,
) -> web.Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if reasons:
        body["reasons"] = reasons
    if detail is not None:
        body["detail"] = detail
    return web.json_response(body, status=status, content_type="application/problem+json", headers=headers)


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

_PROBLEM = {
    "application/problem+json": {
        "schema": {
            "type": "object",
            "properties": {
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "reasons": {"type": "array", "items": {"type": "string"}},
                "detail": {"type": "string"},
            },
        }
    }
}
_RESPONSES = {
    "401": {
        "description": "The device has credentials: present its secret (basic auth password, "
        "`key` query parameter or bearer token).",
        "content": _PROBLEM,
    },
    "400": {
        "description": "Rejected: every reason is listed; the fix is dead-lettered.",
        "content": _PROBLEM,
    },
    "403": {"description": "Unknown or disabled device.", "content": _PROBLEM},
    "503": {
        "description": "Not stored yet (database and spool unavailable, or overloaded): retry later.",
        "content": _PROBLEM,
    },
}
_OSMAND_PARAMS = [
    {"name": name, "in": "query", "required": False, "schema": {"type": kind}, "description": doc}
    for name, kind, doc in (
        ("id", "string", "Device id (also `deviceid`)."),
        ("lat", "number", "Latitude, degrees."),
        ("lon", "number", "Longitude, degrees."),
        ("timestamp", "string", "Epoch seconds or milliseconds, or ISO 8601; default: arrival time."),
        ("speed", "number", "Speed, knots."),
        ("bearing", "number", "Heading, degrees."),
        ("altitude", "number", "Altitude, metres."),
        ("accuracy", "number", "Accuracy, metres."),
        ("batt", "number", "Battery, percent."),
        ("mock", "boolean", "The location may be spoofed."),
        ("key", "string", "The device secret, if not sent as basic auth or bearer token."),
    )
]
_OK_TEXT = {"200": {"description": "Stored.", "content": {"text/plain": {"schema": {"type": "string"}}}}}

_DEVICE_BODIES: dict[str, dict[str, Any]] = {
    "reply": {
        "type": "object",
        "required": ["offer_id", "answer"],
        "properties": {
            "offer_id": {"type": "string", "minLength": 1, "maxLength": 200},
            "answer": {"type": "string", "enum": ["accept", "decline"]},
        },
    },
    "alarm": {
        "type": "object",
        "properties": {
            "lon": {"type": "number", "minimum": -180, "maximum": 180, "description": "Degrees."},
            "lat": {"type": "number", "minimum": -90, "maximum": 90, "description": "Degrees."},
            "description": {"type": "string", "maxLength": 4000},
        },
        "description": "Optional (an empty body is an SOS): without lon/lat, the unit's last position.",
    },
}
_DEVICE_SUMMARIES = {
    "reply": "A device accepts or declines an offer (the HTTP twin of MQTT `outpost/v1/devices/{id}/reply`)",
    "alarm": "A device raises an SOS: a P1 incident (the HTTP twin of MQTT `outpost/v1/devices/{id}/alarm`)",
}


def _device_operation(kind: str) -> dict[str, Any]:
    return {
        "summary": _DEVICE_SUMMARIES[kind],
        "tags": ["ingest"],
        "security": [],
        "parameters": [
            {"name": "device_id", "in": "path", "required": True, "schema": {"type": "string"}},
            {
                "name": "key",
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": "The device secret, if not sent as basic auth or bearer token.",
            },
        ],
        "requestBody": {
            "required": kind == "reply",
            "content": {"application/json": {"schema": _DEVICE_BODIES[kind]}},
        },
        "responses": {
            "202": {
                "description": "Handed to dispatch. `taken`: done (offer answered, incident raised); "
                "`refused`: dispatch would not (the offer is closed, the device is not the unit's, no "
                "position), see `detail`; `forwarded`: no outcome in time, it is still being handled.",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["outcome", "detail"],
                            "properties": {
                                "outcome": {"type": "string", "enum": ["taken", "refused", "forwarded"]},
                                "detail": {"type": "string"},
                            },
                        }
                    }
                },
            },
            "400": {"description": "Malformed body (`detail` says why).", "content": _PROBLEM},
            "401": _RESPONSES["401"],
            "403": _RESPONSES["403"],
            "413": {"description": "Body larger than `max_payload_bytes`.", "content": _PROBLEM},
            "503": {
                "description": "No dispatcher behind this ingest (the `ingest` role).",
                "content": _PROBLEM,
            },
        },
    }


OPENAPI_PATHS: dict[str, Any] = {
    OSMAND_PATH: {
        "get": {
            "summary": "OsmAnd / Traccar Client position (query parameters)",
            "tags": ["ingest"],
            "security": [],
            "parameters": _OSMAND_PARAMS,
            "responses": {**_OK_TEXT, **_RESPONSES},
        },
        "post": {
            "summary": "Traccar Client 9+ position (JSON body) or OsmAnd form body",
            "tags": ["ingest"],
            "security": [],
            "parameters": _OSMAND_PARAMS,
            "requestBody": {
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["device_id", "location"],
                            "properties": {"device_id": {"type": "string"}, "location": {"type": "object"}},
                        }
                    },
                    "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                }
            },
            "responses": {**_OK_TEXT, **_RESPONSES},
        },
    },
    OWNTRACKS_PATH: {
        "post": {
            "summary": "OwnTracks HTTP mode (device id `user/device` from X-Limit-U / X-Limit-D)",
            "tags": ["ingest"],
            "security": [],
            "parameters": [
                {"name": "X-Limit-U", "in": "header", "schema": {"type": "string"}, "description": "User."},
                {"name": "X-Limit-D", "in": "header", "schema": {"type": "string"}, "description": "Device."},
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["_type"],
                            "properties": {"_type": {"type": "string"}},
                        }
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "Stored (or ignored: not a location). No commands for the device.",
                    "content": {"application/json": {"schema": {"type": "array", "maxItems": 0}}},
                },
                **_RESPONSES,
            },
        },
    },
    REPLY_PATH: {"post": _device_operation("reply")},
    ALARM_PATH: {"post": _device_operation("alarm")},
}


class IngestRoutes:
    """The device endpoints (/ingest/…) as a plugin of the dispatcher's API (its `ApiPlugin` shape)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.routes = routes(pipeline)
        self.openapi_paths = OPENAPI_PATHS

    def setup(self, app: web.Application) -> None:
        """Nothing to attach: the pipeline runs under the ingest task."""
