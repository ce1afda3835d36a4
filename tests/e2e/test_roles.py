"""The production split: `outpost ingest` stores the fixes, `outpost api` serves dispatchers and hears the
devices' replies, against one real PostgreSQL and one real Mosquitto, all started as subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.support.http import call as _call
from tests.support.services import REPO, Mosquitto, free_port, wait_for_port

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "outpost.cli"]


def _wait_until(predicate: Callable[[], bool], timeout_s: float = 40.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError("condition not met in time")


@pytest.fixture
def split_roles(pg_url: str, mosquitto: Mosquitto, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`outpost ingest` and `outpost api` on their own ports; yields (API URL, admin token)."""
    api_port, ingest_port = free_port(), free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
    base.update(
        PYTHONPATH=str(REPO),
        OUTPOST_DATABASE_URL=pg_url,
        OUTPOST_MQTT_URL=mosquitto.url,
        OUTPOST_REGISTER_UNKNOWN_DEVICES="true",
        OUTPOST_SPOOL_DIR=str(tmp_path / "spool"),
    )
    token = (
        subprocess.run(
            [*CLI, "token", "create", "--role", "admin"],
            env=base,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    procs = []
    for role, port in (("ingest", ingest_port), ("api", api_port)):
        log = (tmp_path / f"{role}.log").open("wb")
        env = {**base, "OUTPOST_HTTP_PORT": str(port)}
        procs.append(
            subprocess.Popen([*CLI, role], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
        )
    try:
        for proc, port in zip(procs, (ingest_port, api_port), strict=True):
            wait_for_port(port, timeout_s=60, proc=proc)
            # Ready: ingest subscribed (a fix published now is kept), the api role's relay hears replies.
            _wait_until(partial(_ready, f"http://127.0.0.1:{port}"), timeout_s=60)
        yield f"http://127.0.0.1:{api_port}", token
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_a_device_accepts_an_offer_over_mqtt_when_ingest_and_api_run_apart(
    split_roles: tuple[str, str], mosquitto: Mosquitto
) -> None:
    api, token = split_roles
    fix = json.dumps({"ts": int(time.time() * 1000), "lat": 37.7793, "lon": -122.4194, "acc_m": 5, "seq": 1})
    subprocess.run(
        [
            "mosquitto_pub",
            "-p",
            str(mosquitto.port),
            "-q",
            "1",
            "-t",
            "outpost/v1/devices/cam-9/fix",
            "-m",
            fix,
        ],
        check=True,
        timeout=10,
    )

    def indexed() -> bool:
        status, body = _call("GET", f"{api}/v1/units/nearest?lon=-122.4194&lat=37.7793&k=1", token)
        return status == 200 and [u["id"] for u in body["units"]] == ["cam-9"]

    _wait_until(indexed)  # stored by the ingest role, picked up by the api role from the database
    phone = _listen(mosquitto, "outpost/v1/devices/cam-9/offers")
    status, created = _call(
        "POST",
        f"{api}/v1/incidents",
        token,
        {"lon": -122.4190, "lat": 37.7795, "category": "assault", "priority": "P2", "source": "call"},
    )
    assert status == 201
    incident_url = f"{api}/v1/incidents/{created['id']}"

    def offered() -> bool:
        return bool(_call("GET", incident_url, token)[1]["offers"])

    _wait_until(offered)
    offer = _call("GET", incident_url, token)[1]["offers"][0]
    assert offer["unit_id"] == "cam-9"
    pushed, _ = phone.communicate(timeout=45)  # the offer reached the officer's phone over MQTT
    assert json.loads(pushed)["offer_id"] == offer["id"]
    answer = _listen(mosquitto, "outpost/v1/devices/cam-9/offers")
    reply = json.dumps({"offer_id": offer["id"], "answer": "accept"})
    subprocess.run(
        [
            "mosquitto_pub",
            "-p",
            str(mosquitto.port),
            "-q",
            "1",
            "-t",
            "outpost/v1/devices/cam-9/reply",
            "-m",
            reply,
        ],
        check=True,
        timeout=10,
    )

    def accepted() -> bool:
        return bool(_call("GET", incident_url, token)[1]["offers"][0]["state"] == "accepted")

    _wait_until(accepted)
    record = _call("GET", incident_url, token)[1]
    assert record["offers"][0]["answered_by"] == "device:cam-9"
    heard, _ = answer.communicate(timeout=45)  # the phone is told its answer was taken
    assert json.loads(heard) == {
        "type": "reply_outcome",
        "offer_id": offer["id"],
        "outcome": "taken",
        "detail": "accepted",
    }
    # The unit was already 42 m away: accepted, then detected on scene from its telemetry.
    assert record["state"] in ("dispatched", "on_scene")


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _listen(mosquitto: Mosquitto, topic: str) -> subprocess.Popen[bytes]:
    """A phone subscribed to `topic` (QoS 1) for its next message; its stdout has it once it exits."""
    cmd = ["mosquitto_sub", "-p", str(mosquitto.port), "-q", "1", "-t", topic, "-C", "1", "-W", "40"]
    listener = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    time.sleep(0.5)  # subscribed before the message goes out
    return listener
