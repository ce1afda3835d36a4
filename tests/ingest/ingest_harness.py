"""Test helpers for the ingest pipeline: settings, an in-process ingest, registering devices, publishing,
waiting, and running `python -m outpost.ingest_only` as a subprocess that can be killed -9."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import BasicAuth
from sqlalchemy import Engine, text

from ingest.pipeline import Pipeline
from ingest.runner import build_pipeline, run_ingest
from ingest.settings import IngestSettings
from schemas.credentials import hash_secret
from schemas.fix import Fix
from store import registry
from tests.support.metrics import scrape
from tests.support.services import REPO, free_port

NOW = datetime.now(UTC)


def ingest_settings(mqtt_url: str, spool_dir: Path, **overrides: Any) -> IngestSettings:
    """Settings for a test ingest: short batches, fast reconnects."""
    base = IngestSettings(
        mqtt_url=mqtt_url,
        spool_dir=str(spool_dir),
        batch_max_age_ms=50,
        mqtt_reconnect_min_s=0.2,
        mqtt_reconnect_max_s=1.0,
        device_miss_refresh_s=0.0,
        mqtt_client_id=f"outpost-ingest-test-{os.getpid()}",
    )
    return replace(base, **overrides)


# The secret `register` issues unless told otherwise (HTTP tests present it: `DEVICE_AUTH`).
TEST_SECRET = "test-device-secret"
DEVICE_AUTH = BasicAuth("device", TEST_SECRET)


@functools.cache
def test_secret_hash() -> str:
    """TEST_SECRET hashed once (scrypt costs ~50 ms; every device of a test may share it)."""
    return hash_secret(TEST_SECRET)


def issue_test_credentials(engine: Engine, *device_ids: str) -> None:
    """Store TEST_SECRET's hash for devices registered without credentials (e.g. by `register_unknown`)."""
    for device_id in device_ids:
        registry.set_device_credentials(engine, device_id, test_secret_hash())


def register(
    engine: Engine,
    device_id: str,
    *,
    unit_id: str | None = None,
    enabled: bool = True,
    secret: str | None = TEST_SECRET,
) -> None:
    """A device bound to a unit (of the device's id unless named), with credentials for `secret`
    (None: none issued, so ingest refuses it as `no_credentials` unless it runs open)."""
    unit = unit_id or device_id
    registry.insert_unit(engine, id=unit, name=unit, kind="police", status="available", now=NOW)
    digest = None if secret is None else test_secret_hash() if secret == TEST_SECRET else hash_secret(secret)
    registry.insert_device(
        engine, id=device_id, kind="phone", enabled=enabled, credentials_hash=digest, now=NOW
    )
    registry.insert_binding(engine, device_id=device_id, unit_id=unit, valid_from=NOW, valid_to=None)


@dataclass
class Accepted:
    """What on_accepted was given."""

    fixes: list[Fix] = field(default_factory=list)

    def __call__(self, fixes: Sequence[Fix]) -> None:
        self.fixes.extend(fixes)


@contextlib.asynccontextmanager
async def running_ingest(settings: IngestSettings, engine: Engine, **kwargs: Any) -> AsyncIterator[Pipeline]:
    """run_ingest in this loop (kwargs: on_accepted, on_device_message, pipeline, …); stopped on exit."""
    stop = asyncio.Event()
    kwargs.setdefault("on_accepted", Accepted())
    pipeline = kwargs.pop("pipeline", None) or build_pipeline(
        settings, engine, on_accepted=kwargs["on_accepted"], on_device_message=kwargs.get("on_device_message")
    )
    task = asyncio.create_task(run_ingest(settings, engine, stop=stop, pipeline=pipeline, **kwargs))
    await wait_for(lambda: pipeline_connected(pipeline) or task.done(), 20)
    if task.done():
        task.result()
    try:
        yield pipeline
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def pipeline_connected(pipeline: Pipeline) -> bool:
    """Whether the pipeline's subscriber holds a session (it acks only then)."""
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("outpost_ingest_mqtt_connected") == 1.0 and pipeline.directory.loaded


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 20.0, what: str = "") -> None:
    """Poll `predicate` until true; TimeoutError (naming `what`) after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.02)


def count(engine: Engine, sql: str, **params: Any) -> int:
    """A scalar count."""
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


async def mosquitto_pub(port: int, topic: str, payload: bytes, *extra: str) -> None:
    """Publish with the real mosquitto_pub client at QoS 1 (in a thread: the ingest shares this loop)."""
    await asyncio.to_thread(_mosquitto_pub, port, topic, payload, *extra)


def _mosquitto_pub(port: int, topic: str, payload: bytes, *extra: str) -> None:
    subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", topic, "-s", *extra],
        input=payload,
        check=True,
        timeout=30,
    )


def own_fix(seq: int, *, ts_ms: int | None = None, lat: float = 37.77, lon: float = -122.42) -> bytes:
    """A fix in Outpost's own format."""
    ts_ms = ts_ms if ts_ms is not None else int(time.time() * 1000) - 60_000 + seq
    return json.dumps({"ts": ts_ms, "lat": lat, "lon": lon, "acc_m": 5, "seq": seq}).encode()


# ------------------------------------------------------------------------------------------------- subprocess
@dataclass
class IngestProcess:
    """`python -m outpost.ingest_only` with OUTPOST_* settings; `kill()` is SIGKILL, `stop()` SIGTERM."""

    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    metrics_port: int = field(default_factory=free_port)

    def start(self) -> IngestProcess:
        log = self.log_path.open("ab")
        self.metrics_port = free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "outpost.ingest_only",
                "--log-level",
                "INFO",
                "--metrics-port",
                str(self.metrics_port),
            ],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self

    def metric(self, name: str, **labels: str) -> float:
        """A sample of the process's /metrics (NaN if absent or unreachable)."""
        return scrape(f"http://127.0.0.1:{self.metrics_port}/metrics", name, **labels)

    async def connected(self, timeout_s: float = 30.0) -> None:
        """Wait until the process holds its MQTT session."""
        await wait_for(
            lambda: self.metric("outpost_ingest_mqtt_connected") == 1.0 or not self.alive(),
            timeout_s,
            "the ingest subprocess to connect",
        )
        if not self.alive():
            raise RuntimeError(
                f"ingest exited with {self.proc.returncode if self.proc else None}: "
                + self.log_path.read_text(errors="replace")[-3000:]
            )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def runner_env(database_url: str, settings: IngestSettings) -> dict[str, str]:
    """OUTPOST_* variables for the subprocess, from `settings` (only fields that differ from defaults)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
    env["OUTPOST_DATABASE_URL"] = database_url
    defaults = IngestSettings()
    for name, value in vars(settings).items():
        if value != getattr(defaults, name):
            env["OUTPOST_" + name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


# ------------------------------------------------------------------------------------------------- oracle
@dataclass(frozen=True)
class Tally:
    """The seq oracle: every (device, seq) published, stored exactly once?"""

    expected: int
    stored: int
    lost: int
    duplicated: int


def tally(engine: Engine, expected: int) -> Tally:
    """Compare the fixes table with `expected` distinct (device, seq) pairs published."""
    with engine.connect() as conn:
        stored, distinct = conn.execute(
            text("SELECT count(*), count(DISTINCT (device_id, seq)) FROM fixes")
        ).one()
    return Tally(expected, int(stored), expected - int(distinct), int(stored) - int(distinct))


async def publish_stream(
    url: str,
    devices: Sequence[str],
    per_device: int,
    rate_per_s: float,
    progress: list[int] | None = None,
    client_id: str = "chaos-publisher",
    base_ms: int | None = None,
    flush_timeout_s: float = 120.0,
) -> int:
    """Publish `per_device` fixes (seq 1..n) for each device at about `rate_per_s`, QoS 1, and wait until the
    broker acknowledged them all. `progress[0]` counts messages handed to the publisher. The same `base_ms`
    gives the same fixes again (a replay)."""
    from ingest.mqtt.publisher import Publisher

    base_ms = base_ms if base_ms is not None else int(time.time() * 1000) - 600_000
    sent = 0
    # A bounded window: paho cannot hold more than 65535 unacknowledged QoS 1 messages (packet ids).
    async with Publisher(url, client_id, max_inflight=1000) as pub:
        started = time.monotonic()
        for seq in range(1, per_device + 1):
            for device in devices:
                payload = json.dumps({"ts": base_ms + seq * 20, "lat": 37.75, "lon": -122.45, "seq": seq})
                pub.publish(f"outpost/v1/devices/{device}/fix", payload.encode(), 1)
                sent += 1
                if progress is not None:
                    progress[0] = sent
            ahead_s = sent / rate_per_s - (time.monotonic() - started)
            if ahead_s > 0:
                await asyncio.sleep(ahead_s)
        await pub.flush(timeout_s=flush_timeout_s)
    return sent


class Acks:
    """The receiver port: which tokens were acknowledged."""

    def __init__(self) -> None:
        self.tokens: list[int] = []

    def ack(self, tokens: Sequence[int]) -> int:
        self.tokens.extend(tokens)
        return len(tokens)

    def pause(self) -> None:
        pass

    def resume(self) -> None:
        pass
