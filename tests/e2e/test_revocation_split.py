"""Revocation across processes (issue 15, item 2): `outpost api` disables a device or rotates its secret,
and `outpost ingest`, another process, refuses it within seconds: the API sends NOTIFY, the ingest LISTENs
and reloads its directory. The directory's period is an hour here, so nothing else explains the refusal."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.http import request as call
from tests.support.services import REPO, Mosquitto, free_port, wait_for_port

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "outpost.cli"]


@pytest.fixture
def apart(pg_url: str, mosquitto: Mosquitto, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """(API URL, ingest URL, admin token) of `outpost api` and `outpost ingest` running apart."""
    api_port, ingest_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
    env.update(
        PYTHONPATH=str(REPO),
        OUTPOST_DATABASE_URL=pg_url,
        OUTPOST_MQTT_URL=mosquitto.url,
        OUTPOST_SPOOL_DIR=str(tmp_path / "spool"),
        OUTPOST_DEVICE_REFRESH_S="3600",
        OUTPOST_HTTP_AUTH_CACHE_S="3600",
    )
    made = subprocess.run(
        [*CLI, "token", "create", "--role", "admin"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    procs = []
    for role, port in (("ingest", ingest_port), ("api", api_port)):
        log = (tmp_path / f"{role}.log").open("wb")
        procs.append(
            subprocess.Popen(
                [*CLI, role],
                env={**env, "OUTPOST_HTTP_PORT": str(port)},
                cwd=tmp_path,
                stdout=log,
                stderr=log,
            )
        )
    try:
        for proc, port in zip(procs, (ingest_port, api_port), strict=True):
            wait_for_port(port, timeout_s=60, proc=proc)
        yield f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{ingest_port}", token
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


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
