"""The three designs the HTTP comparison serves, each started over the same fleet: seed its store, start its
server, name the feeder sink that keeps its store moving.

- `outpost`: a real `outpost run` process on PostgreSQL and Mosquitto (tests/sim/outpost_process.py, as
  bench_freshness starts it); units, devices, bindings and a first fix per unit are seeded in the database
  before it starts, so its live index is rebuilt from storage; fixes then come over MQTT.
- `split`: the same seeded store served past one process: one `outpost ingest` worker (MQTT 5 shared
  subscription) and one `outpost api` replica following its live feed (tests/support/replicas.py), so
  storing fixes and answering requests no longer share one interpreter.
- `postgis`: benchmarks/knn_postgis.py over a latest_positions table in its own database.
- `redis`: benchmarks/knn_redis.py over a redis-server of its own.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import knn_postgis, knn_redis
from benchmarks.fleet_stream import Fleet
from schemas.fix import Fix
from store.engine import open_engine
from store.fixes import FixWriter
from store.migrate import migrate
from store.settings import StoreSettings
from tests.sim.outpost_process import OutpostProcess
from tests.support.replicas import Cluster, wait_until
from tests.support.services import REPO, Mosquitto, PgCluster, free_port

DESIGNS = ("outpost", "split", "postgis", "redis")
LABELS = {
    "outpost": "Outpost (outpost run: auth, audit, in-memory index)",
    "split": "Outpost past one process (outpost ingest + outpost api on its live feed)",
    "postgis": "PostGIS KNN (aiohttp + psycopg pool, GiST on geography)",
    "redis": "Redis GEOSEARCH (aiohttp + redis.asyncio)",
}
# Units not moved during the run keep their seeded fix: without this, a long run's 1M units would turn stale
# after Outpost's default 300 s and leave its answers, while the baselines know nothing of staleness.
OUTPOST_ENV = {"OUTPOST_MAX_FIX_AGE_S": "86400"}


@dataclass
class Services:
    """What the designs run on: one PostgreSQL cluster, one broker, one Redis."""

    pg: PgCluster
    broker: Mosquitto
    redis: knn_redis.RedisServer


@dataclass(frozen=True)
class Serving:
    """One design up: where to ask, with which token, and where the feeder writes."""

    url: str
    token: str
    sink: str
    target: str
    pid: int


def seed_outpost(fleet: Fleet, url: str) -> None:
    """Migrate, then every unit with a device of the same id bound to it and one fix at its position."""
    import psycopg

    engine = open_engine(url, pool_size=2)
    try:
        migrate(engine, StoreSettings(database_url=url))
        now = datetime.now(UTC)
        with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
            with cur.copy("COPY units (id, name, kind, skills, status) FROM STDIN") as copy:
                for i, unit_id in enumerate(fleet.ids):
                    copy.write_row((unit_id, unit_id, fleet.kind(i), "[]", fleet.status(i)))
            with cur.copy("COPY devices (id, kind, registered_by) FROM STDIN") as copy:
                for unit_id in fleet.ids:
                    copy.write_row((unit_id, "phone", "api"))
            with cur.copy("COPY device_bindings (device_id, unit_id, valid_from) FROM STDIN") as copy:
                for unit_id in fleet.ids:
                    copy.write_row((unit_id, unit_id, now))
        writer = FixWriter(engine)
        lons, lats = fleet.lons.tolist(), fleet.lats.tolist()
        for start in range(0, len(fleet), 20_000):
            writer.write(
                [
                    Fix(
                        device_id=u,
                        unit_id=u,
                        ts=now,
                        received_at=now,
                        lon=lons[i],
                        lat=lats[i],
                        accuracy_m=5.0,
                    )
                    for i, u in enumerate(fleet.ids[start : start + 20_000], start=start)
                ]
            )
    finally:
        engine.dispose()


class ProfiledOutpost(OutpostProcess):
    """`outpost run` under cProfile (written to `profile_path` when it stops on SIGTERM)."""

    def __init__(self, *args: object, profile_path: Path, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.profile_path = profile_path

    def start(self, timeout_s: float = 120.0) -> OutpostProcess:
        from tests.sim import outpost_process

        plain = outpost_process._OUTPOST
        outpost_process._OUTPOST = [
            sys.executable,
            "-m",
            "cProfile",
            "-o",
            str(self.profile_path),
            "-m",
            "outpost.cli",
        ]
        try:
            return super().start(timeout_s)
        finally:
            outpost_process._OUTPOST = plain


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited {proc.returncode}")
        with contextlib.suppress(OSError, urllib.error.URLError), urllib.request.urlopen(url, timeout=1):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{url} not answering after {timeout_s} s")


def _server(script: str, *args: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(REPO / "benchmarks" / script), *args],
        cwd=REPO,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


@contextlib.contextmanager
def serve(
    name: str, fleet: Fleet, services: Services, workdir: Path, profile: Path | None = None
) -> Iterator[Serving]:
    """Seed design `name`'s store, start its server, yield where it answers; stop it afterwards."""
    db = f"{name}_{len(fleet)}"
    if name in ("outpost", "split", "postgis"):
        services.pg.psql(f"CREATE DATABASE {db}")
    if name == "split":
        url = services.pg.url(db)
        seed_outpost(fleet, url)
        nodes = Cluster(url, services.broker.url, workdir / name, dict(OUTPOST_ENV))
        nodes.root.mkdir(exist_ok=True)
        nodes.create_token()
        ingest, api = nodes.ingest(f"split-ingest-{len(fleet)}"), nodes.api(f"split-api-{len(fleet)}")
        try:
            for role in (ingest, api):
                role.start()
            for role in (ingest, api):
                wait_until(role.ready, f"{role.name} ready", 900.0)  # 1M units' rebuild: over a minute
            assert api.proc is not None
            url = api.url + "/v1/units/nearest"
            yield Serving(url, nodes.token, "mqtt", services.broker.url, api.proc.pid)
        finally:
            nodes.stop_all()
        return
    if name == "outpost":
        url = services.pg.url(db)
        seed_outpost(fleet, url)
        (workdir / "outpost").mkdir(exist_ok=True)
        kwargs = {"extra_env": OUTPOST_ENV}
        proc = (
            ProfiledOutpost(url, services.broker.url, workdir / "outpost", profile_path=profile, **kwargs)
            if profile
            else OutpostProcess(url, services.broker.url, workdir / "outpost", **kwargs)
        )
        proc.start(timeout_s=900.0)  # rebuilding 1M units' index takes over a minute on a busy machine
        try:
            yield Serving(
                proc.http_url + "/v1/units/nearest", proc.token, "mqtt", services.broker.url, proc.pid
            )
        finally:
            proc.close()
        return
    port = free_port()
    if name == "postgis":
        dsn = services.pg.url(db)
        knn_postgis.seed(fleet, dsn)
        server = _server("knn_postgis.py", "--dsn", dsn, "--port", str(port), log=workdir / "postgis.log")
        sink, target = "postgis", dsn
    else:
        knn_redis.seed(fleet, services.redis.url)
        server = _server(
            "knn_redis.py", "--url", services.redis.url, "--port", str(port), log=workdir / "redis.log"
        )
        sink, target = "redis", services.redis.url
    url = f"http://127.0.0.1:{port}/nearest"
    try:
        _wait_http(f"{url}?lon=-122.4&lat=37.76&k=1", server)
        yield Serving(url, "", sink, target, server.pid)
    finally:
        server.terminate()
        server.wait(timeout=20)
