"""Revocation across processes (issue 15, item 2): `outpost api` disables a device or rotates its secret,
and `outpost ingest`, another process, refuses it within seconds: the API sends NOTIFY, the ingest LISTENs
and reloads its directory. The directory's period is an hour here, so nothing else explains the refusal."""

from __future__ import annotations

import base64
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.http import request as call
from tests.support.replicas import Cluster, wait_until
from tests.support.services import Mosquitto

pytestmark = pytest.mark.slow


@pytest.fixture
def apart(pg_url: str, mosquitto: Mosquitto, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """(API URL, ingest URL, admin token) of `outpost api` and `outpost ingest` running apart, credentials
    required (not open mode), the directory's period and the verified-secret cache an hour long."""
    cluster = Cluster(
        pg_url,
        mosquitto.url,
        tmp_path,
        extra={
            "OUTPOST_REGISTER_UNKNOWN_DEVICES": "false",
            "OUTPOST_DEVICE_REFRESH_S": "3600",
            "OUTPOST_HTTP_AUTH_CACHE_S": "3600",
        },
    )
    token = cluster.create_token()
    ingest, api = cluster.ingest("rv-ingest").start(), cluster.api("rv-api").start()
    try:
        wait_until(lambda: ingest.ready() and api.ready(), "both roles ready")
        yield api.url, ingest.url, token
    finally:
        cluster.stop_all()


def send(ingest: str, secret: str) -> int:
    fix = {"id": "rv-2", "lat": "37.7749", "lon": "-122.4194", "timestamp": str(int(time.time()))}
    auth = {"Authorization": "Basic " + base64.b64encode(f"rv-2:{secret}".encode()).decode()}
    return call("GET", f"{ingest}/ingest/osmand?{urllib.parse.urlencode(fix)}", auth)[0]


def until_status(ingest: str, secret: str, status: int, timeout_s: float = 30.0) -> float:
    """Seconds until the ingest answers `status` for `secret` (AssertionError after `timeout_s`)."""
    started = time.monotonic()
    while (got := send(ingest, secret)) != status:
        assert time.monotonic() - started < timeout_s, f"still {got} after {timeout_s:.0f} s, not {status}"
        time.sleep(0.1)
    return time.monotonic() - started


def test_disabling_and_new_credentials_reach_an_ingest_in_another_process(
    apart: tuple[str, str, str],
) -> None:
    api, ingest, token = apart
    admin = {"Authorization": f"Bearer {token}"}
    status, created = call("POST", f"{api}/v1/devices", admin, {"id": "rv-2", "kind": "phone"})
    assert status == 201, created
    old = created["credentials"]["secret"]
    until_status(ingest, old, 200)  # first contact: the ingest reloads on a miss
    assert send(ingest, old) == 200  # verified and cached for an hour from now on

    status, rotated = call("POST", f"{api}/v1/devices/rv-2/credentials", admin)
    assert status == 201
    new = rotated["secret"]
    took_rotation_s = until_status(ingest, old, 401)
    assert send(ingest, new) == 200

    assert call("PATCH", f"{api}/v1/devices/rv-2", admin, {"enabled": False})[0] == 200
    took_disable_s = until_status(ingest, new, 403)
    print(f"ingest refused: {took_rotation_s:.2f} s after rotation, {took_disable_s:.2f} s after disabling")
