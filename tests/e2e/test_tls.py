"""TLS is one setting on the brokers and on the HTTP API (issue 15, item 3), tested with self-signed
certificates made at test time:

- the HTTP API over HTTPS: /healthz and an authenticated route answer a client trusting the certificate,
  a plain-HTTP request to the same port gets nothing;
- the embedded broker over TLS: a device publishes a fix over TLS and it is stored, Outpost's own client of
  the broker (the device channel, which sends the events) connects over TLS too, and a plain MQTT
  connection is refused;
- an external Mosquitto with a TLS listener, reached with mqtts:// and OUTPOST_MQTT_TLS_CA;
- a certificate or key that cannot be used is one line naming the setting, exit 2, from the CLI.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import pytest

from store import access
from store.engine import open_engine
from tests.ingest.mqtt_collect import collect
from tests.support.outpost_run import running_outpost
from tests.support.services import REPO, Mosquitto, free_port
from tests.support.tls import NAME, Pair, self_signed, trusting

pytestmark = pytest.mark.slow

GUARD_S = 60.0  # a generous bound on what should take a moment (never a timing)
OPEN = {"OUTPOST_REGISTER_UNKNOWN_DEVICES": "true"}  # devices without credentials, on loopback


def _fix() -> bytes:
    now_ms = round(datetime.now(UTC).timestamp() * 1000)
    return json.dumps({"ts": now_ms, "lon": -122.4194, "lat": 37.7793, "acc_m": 5, "seq": 1}).encode()


def _token(database_url: str) -> str:
    engine = open_engine(database_url, pool_size=1)
    try:
        return access.create_token(engine, role="dispatcher", name="tls", now=datetime.now(UTC))[1]
    finally:
        engine.dispose()


async def _nearest(http: aiohttp.ClientSession, base: str, token: str, **kw: Any) -> list[dict[str, Any]]:
    """The units the API finds near the fix, once at least one is there."""
    while True:
        async with http.get(
            f"{base}/v1/units/nearest?lon=-122.4194&lat=37.7793&k=5",
            headers={"Authorization": f"Bearer {token}"},
            **kw,
        ) as resp:
            assert resp.status == 200
            units: list[dict[str, Any]] = (await resp.json())["units"]
        if units:
            return units
        await asyncio.sleep(0.2)


@pytest.fixture
def api_pair(tmp_path: Path) -> Pair:
    return self_signed(tmp_path, "api")


@pytest.fixture
def mqtt_pair(tmp_path: Path) -> Pair:
    return self_signed(tmp_path, "mqtt")


async def test_https_api_and_the_embedded_broker_over_tls(
    sqlite_url: str, tmp_path: Path, api_pair: Pair, mqtt_pair: Pair
) -> None:
    token = _token(sqlite_url)
    tls = {
        "OUTPOST_HTTP_TLS_CERT": str(api_pair.cert),
        "OUTPOST_HTTP_TLS_KEY": str(api_pair.key),
        "OUTPOST_MQTT_TLS_CERT": str(mqtt_pair.cert),
        "OUTPOST_MQTT_TLS_KEY": str(mqtt_pair.key),
    }
    device_tls = trusting(mqtt_pair.cert, check_hostname=False)  # it dials 127.0.0.1, not outpost.test
    async with (
        asyncio.timeout(GUARD_S),
        running_outpost(sqlite_url, tmp_path, **OPEN, **tls) as (running, mqtt_port),
        aiohttp.ClientSession() as http,
    ):
        base = running.http_url
        assert base.startswith("https://127.0.0.1:") and running.mqtt_url.startswith("mqtts://")
        # Full verification: the client checks the certificate's name (outpost.test) and its signature.
        verified: dict[str, Any] = {"ssl": trusting(api_pair.cert), "server_hostname": NAME}
        async with http.get(f"{base}/healthz", **verified) as resp:
            assert resp.status == 200
        async with http.get(f"{base}/v1/units/nearest?lon=0&lat=0", **verified) as resp:
            assert resp.status == 401  # TLS is no login
        with pytest.raises(aiohttp.ClientError):  # a client that does not trust the certificate
            await http.get(f"{base}/healthz", server_hostname=NAME)
        with pytest.raises(aiohttp.ClientError):  # plain HTTP on the HTTPS port: no answer
            await http.get(base.replace("https://", "http://") + "/healthz")

        with pytest.raises(aiomqtt.MqttError):  # plain MQTT on the TLS listener
            async with aiomqtt.Client("127.0.0.1", mqtt_port, identifier="plain-1", timeout=5):
                pass
        async with (
            collect(mqtt_port, "outpost/v1/events/#", tls=device_tls) as heard,
            aiomqtt.Client("127.0.0.1", mqtt_port, identifier="cam-1", tls_context=device_tls) as device,
        ):
            await device.publish("outpost/v1/devices/cam-1/fix", _fix(), qos=1)
            units = await _nearest(http, base, token, **verified)
            assert units[0]["id"] == "cam-1" and units[0]["distance_m"] < 1.0
            # The events go out through Outpost's own client of the broker: it connected over TLS, trusting
            # the broker's certificate although that names outpost.test and it dials 127.0.0.1.
            while not any(t == "outpost/v1/events/device.alarm" for t, _ in heard.messages):
                await device.publish("outpost/v1/devices/cam-1/alarm", b'{"description": "tls"}', qos=1)
                await asyncio.sleep(0.5)


@pytest.fixture
def tls_mosquitto(tmp_path: Path) -> Iterator[tuple[Mosquitto, Pair]]:
    """A real Mosquitto whose only listener (listener PORT 127.0.0.1) speaks TLS with a self-signed pair."""
    broker = Mosquitto()
    pair = self_signed(broker.root, "broker")
    if os.geteuid() == 0:  # Mosquitto drops root for the `mosquitto` user, which must read its key
        for path in (pair.cert, pair.key):
            shutil.chown(path, "mosquitto")
    broker.extra_conf = f"certfile {pair.cert}\nkeyfile {pair.key}\n"  # for the listener above them
    broker.start()
    yield broker, pair
    broker.close()


async def test_an_external_broker_over_tls_with_its_ca(
    sqlite_url: str, tmp_path: Path, tls_mosquitto: tuple[Mosquitto, Pair]
) -> None:
    broker, pair = tls_mosquitto
    token = _token(sqlite_url)
    external = {
        "OUTPOST_MQTT_URL": f"mqtts://127.0.0.1:{broker.port}",
        "OUTPOST_MQTT_TLS_CA": str(pair.cert),
    }
    device_tls = trusting(pair.cert, check_hostname=False)
    async with (
        asyncio.timeout(GUARD_S),
        running_outpost(sqlite_url, tmp_path, **OPEN, **external) as (running, _),
        aiohttp.ClientSession() as http,
    ):
        async with aiomqtt.Client(
            "127.0.0.1", broker.port, identifier="cam-2", tls_context=device_tls
        ) as dev:
            await dev.publish("outpost/v1/devices/cam-2/fix", _fix(), qos=1)
        units = await _nearest(http, running.http_url, token)
        assert units[0]["id"] == "cam-2"
        with pytest.raises(aiomqtt.MqttError):  # the broker's listener speaks TLS only
            async with aiomqtt.Client("127.0.0.1", broker.port, identifier="plain-2", timeout=5):
                pass


CLI = [sys.executable, "-m", "outpost.cli"]


def _run_refused(tmp_path: Path, **env: str) -> str:
    """`outpost run` with `env`: it must exit 2 with one line on stderr and nothing listening; the line."""
    http_port, mqtt_port = free_port(), free_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
    full.update(
        PYTHONPATH=str(REPO),
        OUTPOST_HTTP_PORT=str(http_port),
        OUTPOST_MQTT_LISTEN=f"127.0.0.1:{mqtt_port}",
        **env,
    )
    done = subprocess.run([*CLI, "run"], cwd=tmp_path, env=full, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr and not done.stdout, done.stderr
    assert not (tmp_path / "outpost-data" / "outpost.db").exists()  # refused before anything started
    return lines[0]


def test_a_key_of_another_certificate_is_one_line(tmp_path: Path, api_pair: Pair, mqtt_pair: Pair) -> None:
    line = _run_refused(
        tmp_path, OUTPOST_HTTP_TLS_CERT=str(api_pair.cert), OUTPOST_HTTP_TLS_KEY=str(mqtt_pair.key)
    )
    assert line == (
        f"outpost: configuration error: OUTPOST_HTTP_TLS_KEY={mqtt_pair.key}: the key does not belong to the "
        f"certificate OUTPOST_HTTP_TLS_CERT={api_pair.cert}; name the private key the certificate was "
        "issued for"
    )


def test_a_missing_certificate_file_is_one_line(tmp_path: Path, mqtt_pair: Pair) -> None:
    missing = tmp_path / "gone.crt"
    line = _run_refused(tmp_path, OUTPOST_MQTT_TLS_CERT=str(missing), OUTPOST_MQTT_TLS_KEY=str(mqtt_pair.key))
    assert line == (
        f"outpost: configuration error: OUTPOST_MQTT_TLS_CERT={missing}: cannot read it (No such file or "
        "directory); name a PEM file Outpost may read"
    )


def test_a_certificate_without_its_key_is_one_line(tmp_path: Path, api_pair: Pair) -> None:
    line = _run_refused(tmp_path, OUTPOST_HTTP_TLS_CERT=str(api_pair.cert))
    assert line.startswith(
        "outpost: configuration error: OUTPOST_HTTP_TLS_CERT is set but OUTPOST_HTTP_TLS_KEY is empty"
    )
