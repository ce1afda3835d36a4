"""No secret in any log line at any level (issue 15): `outpost --log-level DEBUG run` on PostgreSQL, through a
session that issues API tokens and device credentials, sends fixes with `?key=`, basic auth and a bearer
secret, is refused for wrong secrets and a bad token, and loses its database; then everything it and the
CLI wrote (stdout and stderr) is searched for every secret of the session: the tokens, the device secrets
(right and wrong), the database password, and the digests stored for them."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from schemas.credentials import token_digest
from tests.support.services import REPO, Mosquitto, PgCluster, free_port

pytestmark = pytest.mark.slow

_OUTPOST = [sys.executable, "-m", "outpost.cli", "--log-level", "DEBUG"]


@pytest.fixture
def cluster() -> Iterator[PgCluster]:
    """A cluster of this test's own: the test stops it."""
    pg = PgCluster().start()
    try:
        yield pg
    finally:
        pg.close()


def _request(url: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None) -> Any:
    """(status, decoded JSON body or None) of one request; errors are answers too."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, None


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_no_secret_reaches_any_log_line(cluster: PgCluster, tmp_path: Path) -> None:
    cluster.psql("CREATE DATABASE logs")
    db_password = "pg-" + secrets.token_urlsafe(16)  # trust authentication: any password is taken
    broker = Mosquitto().start()
    port = str(free_port())
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "OUTPOST_DATABASE_URL": cluster.url("logs").replace("@", f":{db_password}@", 1),
        "OUTPOST_MQTT_URL": broker.url,
        "OUTPOST_HTTP_PORT": port,
        "OUTPOST_SPOOL_DIR": str(tmp_path / "spool"),
        "OUTPOST_REGISTER_UNKNOWN_DEVICES": "false",
    }
    written: list[str] = []

    def cli(*args: str) -> str:
        out = subprocess.run(
            [*_OUTPOST, *args], capture_output=True, text=True, env=env, timeout=120, check=False
        )
        written.append(out.stderr)  # its stdout is its answer: `token create` prints the new token there
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout

    cli("migrate")
    admin = cli("token", "create", "--role", "admin").strip().splitlines()[-1].strip()
    log_path = tmp_path / "outpost.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen([*_OUTPOST, "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            assert server.poll() is None, log_path.read_text(errors="replace")[-3000:]
            with contextlib.suppress(OSError):
                if _request(base + "/readyz")[0] == 200:
                    break
            time.sleep(0.1)
        issued = _session(base, admin)
        cluster.stop("immediate")  # the database goes away mid-session
        _while_the_database_is_down(base, admin, issued)
    finally:
        server.terminate()
        server.wait(timeout=30)
        broker.close()
    written.append(log_path.read_text(errors="replace"))
    text = "\n".join(written)
    assert "DEBUG" in text  # the level was on: the search had lines to search
    issued["database password"] = db_password
    cluster.start_again()
    stored = cluster.psql("SELECT token_hash FROM api_tokens", dbname="logs").split()
    stored += cluster.psql(
        "SELECT credentials_hash FROM devices WHERE credentials_hash IS NOT NULL", "logs"
    ).split()
    for name, value in list(issued.items()):
        if name.endswith("token"):
            issued[f"{name} digest"] = token_digest(value)
    for i, value in enumerate(stored):
        issued[f"stored hash {i}"] = value
        issued[f"stored hash {i}, its digest part"] = value.rsplit("$", 1)[-1]
    assert len(stored) >= 4
    leaked = [name for name, value in issued.items() if value in text]
    assert not leaked, f"secrets in the logs: {leaked}"


def _session(base: str, admin: str) -> dict[str, str]:
    """Issue tokens and credentials, use them right and wrong; the secrets it handled, by name."""
    auth = {"Authorization": f"Bearer {admin}"}
    issued = {
        "admin token": admin,
        "bad token": secrets.token_urlsafe(32),
        "wrong secret": "w-" + secrets.token_hex(12),
    }
    status, body = _request(base + "/v1/tokens", "POST", {"role": "viewer", "name": "logs"}, auth)
    assert status == 201
    issued["viewer token"] = body["token"]
    for device in ("log-1", "log-2"):
        assert _request(base + "/v1/devices", "POST", {"id": device, "kind": "phone"}, auth)[0] == 201
        status, body = _request(base + f"/v1/devices/{device}/credentials", "POST", None, auth)
        assert status == 201
        issued[f"{device} secret"] = body["secret"]
    now = int(time.time())
    fix = f"/ingest/osmand?id=log-1&lat=37.77&lon=-122.42&timestamp={now}"
    secret = issued["log-1 secret"]
    assert _request(f"{base}{fix}&key={secret}")[0] == 200
    assert _request(base + fix, headers=_basic("log-1", secret))[0] == 200
    assert _request(base + fix, headers={"Authorization": f"Bearer {secret}"})[0] == 200
    assert _request(f"{base}{fix}&key={issued['wrong secret']}")[0] == 401
    assert _request(base + fix, headers=_basic("log-1", issued["wrong secret"]))[0] == 401
    # the other device's secret for this device, in the query: a secret sent to the wrong place
    assert _request(f"{base}{fix}&key={issued['log-2 secret']}")[0] == 401
    assert _request(base + "/v1/units", headers={"Authorization": f"Bearer {issued['bad token']}"})[0] == 401
    assert (
        _request(base + "/v1/units", headers={"Authorization": f"Bearer {issued['viewer token']}"})[0] == 200
    )
    assert (
        _request(base + "/v1/tokens", headers={"Authorization": f"Bearer {issued['viewer token']}"})[0] == 403
    )
    return issued


def _while_the_database_is_down(base: str, admin: str, issued: dict[str, str]) -> None:
    """Requests that need the database while it is gone: they fail, and the failure is logged."""
    auth = {"Authorization": f"Bearer {admin}"}
    now = int(time.time())
    fix = f"/ingest/osmand?id=log-2&lat=37.78&lon=-122.41&timestamp={now}&key={issued['log-2 secret']}"
    statuses = [
        _request(base + fix)[0],
        _request(base + "/v1/tokens", "POST", {"role": "viewer", "name": "down"}, auth)[0],
        _request(base + "/v1/devices/log-1/credentials", "POST", None, auth)[0],
        _request(base + "/v1/units", headers={"Authorization": f"Bearer {issued['bad token']}"})[0],
    ]
    assert all(s < 600 for s in statuses)
