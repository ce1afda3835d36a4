"""The live map's browser tests' machinery: a real `outpost run` (real broker, real PostgreSQL), a TCP
proxy that can cut the page's connections, and a headless Chromium driven by selenium.

Chromium is not optional: where it (or its driver) is missing these tests fail saying how to install it,
they do not skip (scripts/install-services installs Debian's chromium and chromium-driver).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.http import call
from tests.support.services import REPO, Mosquitto, free_port, wait_for_port

CLI = [sys.executable, "-m", "outpost.cli"]
ARTIFACTS = REPO / "test-artifacts"


def wait_until(predicate: Callable[[], Any], timeout_s: float = 30.0, what: str = "condition") -> Any:
    """Poll until `predicate` is truthy (a guard against hanging, not a timing assertion)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not met within {timeout_s} s")
        time.sleep(0.2)


def publish(mosquitto: Mosquitto, topic: str, payload: dict[str, Any]) -> None:
    """A device publishes one message (QoS 1) with the Mosquitto client."""
    cmd = ["mosquitto_pub", "-p", str(mosquitto.port), "-q", "1", "-t", topic, "-m", json.dumps(payload)]
    subprocess.run(cmd, check=True, timeout=10)


def listen(mosquitto: Mosquitto, topic: str) -> subprocess.Popen[bytes]:
    """A device subscribed to `topic` for its next message; its stdout has it once it exits."""
    cmd = ["mosquitto_sub", "-p", str(mosquitto.port), "-q", "1", "-t", topic, "-C", "1", "-W", "40"]
    listener = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    time.sleep(0.5)  # subscribed before the message goes out
    return listener


@dataclass
class Outpost:
    """A running `outpost run`: its URL and one token per role."""

    url: str
    tokens: dict[str, str]
    log: Path

    def api(self, method: str, path: str, body: dict[str, Any] | None = None, role: str = "admin") -> Any:
        status, found = call(method, self.url + path, self.tokens[role], body)
        assert status < 300, (method, path, status, found)
        return found


@contextlib.contextmanager
def running_outpost(pg_url: str, mosquitto: Mosquitto, tmp_path: Path, **settings: str) -> Iterator[Outpost]:
    """`outpost run` (ingest + API) against the real broker and database, tokens for every role;
    `settings`: more OUTPOST_* variables (e.g. OUTPOST_OFFER_TIMEOUT_S="3")."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
    env.update(
        PYTHONPATH=str(REPO),
        OUTPOST_DATABASE_URL=pg_url,
        OUTPOST_MQTT_URL=mosquitto.url,
        OUTPOST_REGISTER_UNKNOWN_DEVICES="true",
        OUTPOST_SPOOL_DIR=str(tmp_path / "spool"),
        OUTPOST_HTTP_PORT=str(port),
        OUTPOST_AUTO_DISPATCH_PRIORITIES="",
        OUTPOST_STREAM_KEEPALIVE_S="1",
    )
    env.update(settings)
    tokens = {}
    for role in ("admin", "dispatcher", "viewer"):
        made = subprocess.run(
            [*CLI, "token", "create", "--role", role, "--name", f"map-{role}"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        tokens[role] = made.stdout.strip().splitlines()[-1]
    log = tmp_path / "outpost.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*CLI, "run"], env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, timeout_s=60, proc=proc)
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _ready(base), 60, "outpost /readyz")
        yield Outpost(base, tokens, log)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/readyz", timeout=5) as resp:
            return resp.status == 200
    except (urllib.error.URLError, ConnectionError):
        return False


class CuttableProxy:
    """A TCP proxy in front of Outpost: `cut()` drops every connection and refuses new ones until
    `restore()`, as a station's network going away would."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = True
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.open = False
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


def chromium_driver(artifacts: Path) -> Any:
    """A headless Chromium with its console log kept; fails (never skips) when Chromium is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is missing: pip install -e '.[dev]'")
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.fail(
            "the live map's browser tests need Chromium and chromedriver on PATH: run "
            "scripts/install-services "
            "(Debian: apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,900",
        f"--user-data-dir={artifacts / 'chromium-profile'}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver_path), options=options)
