"""`outpost run` and `outpost demo` started as subprocesses on the embedded default and checked from outside,
as an operator would: real devices (mosquitto_pub, an OwnTracks payload, a Traccar Client request), the
nearest-unit query over HTTP, and the demo's moving units."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.services import REPO, Mosquitto, free_port, wait_for_port

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "outpost.cli"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def _get(url: str, token: str | None = None) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _wait_until(predicate: object, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


@pytest.fixture
def embedded_run(tmp_path: Path) -> Iterator[tuple[str, int, str, Path]]:
    """`outpost run` with no database or broker configured: SQLite in ./outpost-data, embedded broker."""
    http_port, mqtt_port = free_port(), free_port()
    env = _env(
        tmp_path,
        OUTPOST_HTTP_PORT=str(http_port),
        OUTPOST_MQTT_LISTEN=f"127.0.0.1:{mqtt_port}",
        OUTPOST_REGISTER_UNKNOWN_DEVICES="true",
    )
    token = (
        subprocess.run(
            [*CLI, "token", "create", "--role", "dispatcher", "--name", "e2e"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    log = (tmp_path / "run.log").open("wb")
    proc = subprocess.Popen([*CLI, "run"], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(http_port, timeout_s=60, proc=proc)
        wait_for_port(mqtt_port, timeout_s=30, proc=proc)
        _wait_until(lambda: _get(f"http://127.0.0.1:{http_port}/readyz")[0] == 200, 60)
        yield f"http://127.0.0.1:{http_port}", mqtt_port, token, tmp_path
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_run_on_the_embedded_default_answers_nearest_from_real_devices(
    embedded_run: tuple[str, int, str, Path],
) -> None:
    http, mqtt_port, token, workdir = embedded_run
    now_ms = int(time.time() * 1000)
    own = json.dumps({"ts": now_ms, "lat": 37.77930, "lon": -122.41940, "acc_m": 5, "seq": 1})
    subprocess.run(
        ["mosquitto_pub", "-p", str(mqtt_port), "-q", "1", "-t", "outpost/v1/devices/cam-1/fix", "-m", own],
        check=True,
        timeout=10,
    )
    owntracks = json.dumps(
        {
            "_type": "location",
            "lat": 37.78100,
            "lon": -122.41700,
            "tst": now_ms // 1000,
            "acc": 8,
            "tid": "ph",
        }
    )
    subprocess.run(
        ["mosquitto_pub", "-p", str(mqtt_port), "-q", "1", "-t", "owntracks/alice/phone", "-m", owntracks],
        check=True,
        timeout=10,
    )
    with urllib.request.urlopen(
        f"{http}/ingest/osmand?id=radio-9&lat=37.7700&lon=-122.4300&timestamp={now_ms // 1000}&accuracy=10",
        timeout=10,
    ) as resp:
        assert resp.status == 200

    def three_units() -> bool:
        status, body = _get(f"{http}/v1/units/nearest?lon=-122.4194&lat=37.7793&k=5", token)
        return status == 200 and len(body["units"]) == 3  # type: ignore[arg-type]

    _wait_until(three_units)
    _, body = _get(f"{http}/v1/units/nearest?lon=-122.4194&lat=37.7793&k=5", token)
    units = body["units"]
    assert isinstance(units, list)
    assert units[0]["id"] == "cam-1" and units[0]["distance_m"] < 1.0
    assert [u["distance_m"] for u in units] == sorted(u["distance_m"] for u in units)
    assert (workdir / "outpost-data" / "outpost.db").exists()
    status, _ = _get(f"{http}/v1/units/nearest?lon=-122.4194&lat=37.7793&k=5")
    assert status == 401


def test_demo_brings_up_moving_units_and_prints_how_to_query(tmp_path: Path) -> None:
    http_port, mqtt_port = free_port(), free_port()
    env = _env(tmp_path, OUTPOST_HTTP_PORT=str(http_port), OUTPOST_MQTT_LISTEN=f"127.0.0.1:{mqtt_port}")
    log_path = tmp_path / "demo.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*CLI, "demo", "--duration", "40", "--units", "12", "--speedup", "10"],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until(lambda: "nearest unit" in log_path.read_text(), timeout_s=60)
            curl = next(line for line in log_path.read_text().splitlines() if "nearest unit" in line)
            token = re.search(r"Bearer ([\w-]+)", curl).group(1)  # type: ignore[union-attr]
            url = re.search(r"'(http://[^']+)'", curl).group(1)  # type: ignore[union-attr]

            def positions() -> dict[str, tuple[float, float]]:
                # Any status: the demo dispatches its units to calls, and a busy unit still moves.
                status, body = _get(url.replace("k=3", "k=50&status=any"), token)
                assert status == 200
                return {u["id"]: (u["lon"], u["lat"]) for u in body["units"]}  # type: ignore[union-attr]

            _wait_until(lambda: len(positions()) >= 10, timeout_s=40)
            first = positions()
            time.sleep(6)
            later = positions()
            moved = [u for u in first if u in later and later[u] != first[u]]
            assert len(moved) >= 3, (first, later)
            assert proc.wait(timeout=90) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log_path.read_text()
    assert "units online" in text and "Traceback" not in text


def test_an_address_already_taken_is_one_clear_line(tmp_path: Path) -> None:
    """The embedded broker's port in use (a Mosquitto already there): one line naming the address and the
    setting to change, exit status 1, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _env(tmp_path, OUTPOST_MQTT_LISTEN=f"127.0.0.1:{port}", OUTPOST_HTTP_PORT=str(free_port()))
        run = [*CLI, "run"]
        done = subprocess.run(run, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]  # a traceback would end in "OSError: …"
    assert last.startswith("outpost: cannot start: the embedded MQTT broker cannot listen on")
    assert f"127.0.0.1:{port}" in last and "OUTPOST_MQTT_LISTEN" in last
    assert "Traceback" not in done.stderr and "amqtt" not in done.stderr, done.stderr


def test_an_http_port_already_taken_is_one_clear_line(tmp_path: Path) -> None:
    """The API's port in use (another web server there): one line naming the setting, exit 1, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _env(tmp_path, OUTPOST_MQTT_LISTEN=f"127.0.0.1:{free_port()}", OUTPOST_HTTP_PORT=str(port))
        run = [*CLI, "run"]
        done = subprocess.run(run, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("outpost: cannot start:") and "OUTPOST_HTTP_PORT" in last, last


@pytest.mark.parametrize("command", [["run"], ["migrate"], ["token", "create", "--role", "viewer"]])
def test_a_database_that_does_not_answer_is_one_clear_line(tmp_path: Path, command: list[str]) -> None:
    """Nothing listens where OUTPOST_DATABASE_URL points: one line naming the setting, the URL without its
    password, and the driver's reason; exit 2 (the environment is wrong, like a bad setting), no traceback."""
    url = f"postgresql://outpost:s3cret@127.0.0.1:{free_port()}/outpost"
    env = _env(
        tmp_path,
        OUTPOST_DATABASE_URL=url,
        OUTPOST_MQTT_LISTEN=f"127.0.0.1:{free_port()}",
        OUTPOST_HTTP_PORT=str(free_port()),
    )
    done = subprocess.run([*CLI, *command], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "s3cret" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("outpost: cannot start: the database postgresql://outpost:***@127.0.0.1:"), last
    assert "OUTPOST_DATABASE_URL" in last and "refused" in last.lower(), last


@pytest.mark.parametrize("role", ["ingest", "run"])
def test_a_role_with_an_external_broker_is_ready_once_subscribed(
    tmp_path: Path, mosquitto: Mosquitto, role: str
) -> None:
    """`outpost ingest` and `outpost run` against a real Mosquitto: /readyz answers 200, nothing pending,
    once the broker acknowledged the subscription; /healthz stays liveness."""
    http_port = free_port()
    env = _env(
        tmp_path,
        OUTPOST_DATABASE_URL=f"sqlite:///{tmp_path / 'outpost.db'}",
        OUTPOST_MQTT_URL=mosquitto.url,
        OUTPOST_HTTP_PORT=str(http_port),
    )
    with (tmp_path / "run.log").open("wb") as log:
        proc = subprocess.Popen([*CLI, role], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(http_port, timeout_s=60, proc=proc)
        _wait_until(lambda: _get(f"http://127.0.0.1:{http_port}/readyz")[0] == 200, 60)
        status, body = _get(f"http://127.0.0.1:{http_port}/readyz")
        assert (status, body["status"], body["pending"], body["database"]) == (200, "ready", [], True)
        assert _get(f"http://127.0.0.1:{http_port}/healthz")[0] == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert "ingest subscribed" in (tmp_path / "run.log").read_text()
