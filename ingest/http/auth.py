"""Device authentication: the device secret (over HTTP the basic auth password, `?key=`, or bearer token;
at a broker the MQTT password) checked against the directory's hashes, with successes cached (scrypt is
slow)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import time
from collections.abc import Callable, Iterable

from aiohttp import web

from ingest import metrics
from ingest.broker_acl import Principal
from ingest.devices import DeviceDirectory
from ingest.http.problems import problem
from schemas.accounts import is_reserved
from schemas.credentials import verify_secret

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
        """Whether `secret` opens `device_id`. A device with no stored hash has nothing to check here:
        validation refuses it (`no_credentials`, or `unknown_device`; a 403, dead-lettered and counted like
        every refusal, over MQTT too), except in open mode (register_unknown_devices)."""
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


async def identify_device(
    directory: DeviceDirectory, auth: DeviceAuth, username: str, password: str | None, *, open_ok: bool
) -> tuple[Principal | None, str]:
    """The device a broker login names (its user name is the device id), or None and why it is refused.
    `open_ok`: a device without credentials is let in on its name alone (open mode, loopback only)."""
    if is_reserved(username):
        return None, "reserved_user_name"
    await refresh_if_unsure(directory, [username])
    info, stored = directory.get(username), directory.secret_hash(username)
    if info is not None and not info.enabled:
        return None, "disabled"
    if stored is None:  # not registered, or no credentials: its name proves nothing
        if open_ok:
            return Principal("device", username, None, info is not None), ""
        return None, "no_credentials"
    if not await auth.allows(username, password):
        return None, "bad_secret"
    return Principal("device", username, stored, True), ""


async def refresh_if_unsure(directory: DeviceDirectory, device_ids: Iterable[str]) -> None:
    """Reload the directory (rate-limited) when a device is unknown, or known without credentials: it may
    have been registered, or had its credentials issued, a moment ago (through another API replica)."""
    if any(_unsure(directory, d) for d in device_ids) and directory.miss_refresh_due():
        await directory.load()


def _unsure(directory: DeviceDirectory, device_id: str) -> bool:
    device = directory.get(device_id)
    if device is None:
        return True
    return not device.has_credentials and not directory.register_unknown


def unauthorized(request: web.Request) -> web.Response:
    """401, counted: the device has credentials and did not present its secret."""
    metrics.UNAUTHORIZED.inc()
    return problem(
        request,
        401,
        "device secret missing or wrong: send it as the HTTP basic password (or ?key=)",
        invalid_params=[{"name": "Authorization", "reason": "the device's secret is missing or wrong"}],
        headers={"WWW-Authenticate": 'Basic realm="outpost"'},
    )


def secret_of(request: web.Request) -> str | None:
    """The secret the request presents: basic auth password (the user name is not checked: OwnTracks
    sends its user there), bearer token, or the `key` query parameter."""
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
