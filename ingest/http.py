"""HTTP ingestion for phones that cannot speak MQTT: OsmAnd / Traccar Client and OwnTracks HTTP mode.

Same decoding, validation, storage and guarantees as MQTT; the status code tells the device what became
of its fix, so its own buffer does the rest:

- 200: stored (committed in the database, or in the durable spool). OwnTracks gets `[]` (no commands).
- 400 / 403: rejected, with every reason (`application/problem+json`); 403 for unknown or disabled devices.
- 401: the device has credentials and did not present its secret (HTTP basic password, `?key=`, or
  `Authorization: Bearer`); the basic-auth user name is not checked (OwnTracks sends its user there).
- 503: not durable in time (database down and spool full, or overloaded): retry later.

The composition root mounts `routes(pipeline)`; the API's bearer-token middleware skips `/ingest/`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ingest import metrics
from ingest.decode import Decoded, decode_owntracks_http, decode_traccar_http
from ingest.devices import DeviceDirectory
from ingest.pipeline import Pipeline, Submission
from ingest.rules import DISABLED_DEVICE, UNKNOWN_DEVICE
from schemas.credentials import verify_secret

OSMAND_PATH = "/ingest/osmand"
OWNTRACKS_PATH = "/ingest/owntracks"
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
        """Whether `secret` opens `device_id` (devices without credentials need none)."""
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
    for device_id in dict.fromkeys(c.device_id for c in decoded.candidates):
        if not await auth.allows(device_id, _secret(request)):
            metrics.UNAUTHORIZED.inc()
            return _problem(
                401,
                "device secret missing or wrong",
                [],
                headers={"WWW-Authenticate": 'Basic realm="outpost"'},
            )
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
    status: int, title: str, reasons: list[str], headers: dict[str, str] | None = None
) -> web.Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if reasons:
        body["reasons"] = reasons
    return web.json_response(body, status=status, content_type="application/problem+json", headers=headers)


_PROBLEM = {
    "application/problem+json": {
        "schema": {
            "type": "object",
            "properties": {
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "reasons": {"type": "array", "items": {"type": "string"}},
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
}
