"""Outpost past one process, for tests: `outpost ingest` workers and `outpost api` replicas as
subprocesses over one real PostgreSQL and one real Mosquitto, each killable with -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.services import REPO, free_port

CLI = [sys.executable, "-m", "outpost.cli"]


def wait_until(predicate: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    """Poll `predicate` until it holds; AssertionError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"not met in {timeout_s:g} s: {what}")


@dataclass
class Role:
    """One `outpost ingest` or `outpost api` process."""

    role: str
    name: str
    env: dict[str, str]
    root: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / f"{self.name}.log"

    def start(self) -> Role:
        env = {**self.env, "OUTPOST_HTTP_PORT": str(self.port)}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*CLI, self.role], env=env, cwd=self.root, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def ready(self) -> bool:
        """/readyz answers 200 (the api role: live picture loaded; ingest: subscribed)."""
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited: {self.log_tail()}")
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL, and wait for it to be gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


@dataclass
class Cluster:
    """The processes of one test, sharing a database and a broker; `stop_all` ends what still runs."""

    pg_url: str
    mqtt_url: str
    root: Path
    extra: dict[str, str] = field(default_factory=dict)
    roles: list[Role] = field(default_factory=list)
    token: str = ""

    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
        env.update(
            PYTHONPATH=str(REPO),
            OUTPOST_DATABASE_URL=self.pg_url,
            OUTPOST_MQTT_URL=self.mqtt_url,
            OUTPOST_MQTT_PROTOCOL="5",
            OUTPOST_REGISTER_UNKNOWN_DEVICES="true",
        )
        env.update(self.extra)
        return env

    def create_token(self) -> str:
        done = subprocess.run(
            [*CLI, "token", "create", "--role", "admin"],
            env=self.base_env(),
            cwd=self.root,
            capture_output=True,
            text=True,
            check=True,
        )
        self.token = done.stdout.strip().splitlines()[-1]
        return self.token

    def ingest(self, name: str) -> Role:
        """An ingest worker in the shared group `ingest`; its client id (so its session) is its name."""
        env = self.base_env()
        env.update(
            OUTPOST_MQTT_CLIENT_ID=name,
            OUTPOST_MQTT_SHARED_GROUP="ingest",
            OUTPOST_SPOOL_DIR=str(self.root / f"spool-{name}"),
        )
        return self._add(Role("ingest", name, env, self.root))

    def api(self, name: str, **settings: str) -> Role:
        """An api replica with its own MQTT client ids (its relay session, its feed subscription)."""
        env = self.base_env()
        env.update(OUTPOST_MQTT_CLIENT_ID=name, **settings)
        return self._add(Role("api", name, env, self.root))

    def _add(self, role: Role) -> Role:
        self.roles.append(role)
        return role

    def stop_all(self) -> None:
        for role in self.roles:
            role.stop()
