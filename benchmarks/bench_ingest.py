"""Ingest benchmark: Outpost's ingest against a raw baseline, on our own PostgreSQL and Mosquitto.

    .venv/bin/python benchmarks/bench_ingest.py [--duration 60] [--rate 10000] [--devices 1000]

Starts a PostgreSQL cluster and a Mosquitto broker of its own (tests/support/services.py), then runs, for
each subscriber in turn under the same conditions (its own database, the same broker):

- sustained: `--publishers` processes publish `--devices` devices at `--rate` fixes/s in total (QoS 1,
  our own format, `ts` = the publish time) for `--duration` s;
- capacity: `--backlog` messages are queued at the broker while the subscriber is away, then drained.

The subscribers: **outpost** is `python -m outpost.ingest_only` (default settings: MQTT 5, decode, validate,
batch, COPY, ack once durable). **raw** is a bare paho subscriber (MQTT 3.1.1, paho's own loop, manual acks
after each batch, fields pulled out with msgspec, no validation) writing each batch with binary COPY into a
staging table and INSERT … ON CONFLICT DO NOTHING (the least a subscriber must do to be idempotent).

Reported: fixes/s stored in the steady state of the sustained phase (its first 2 s excluded), publish→insert
latency p50/p99 (a benchmark-only column `inserted_at DEFAULT clock_timestamp()` is added to `fixes`; the
batch commits right after) split into publish→receive and receive→insert, the subscriber's CPU per 1000
fixes (utime+stime of its process), the CPU use of each party, the drain rate of the backlog, the ratios
outpost/raw, and the oracle: every (device, seq) published is stored exactly once. Then (unless --no-grids)
the grids comparison: the same sustained phase for outpost ingest feeding a live picture and its patrol
watch (`python -m outpost.ingest_only --live-picture`), once with no grids and once with the 51 SF grids
imported, printing both rates, both CPU costs and the ratios with/without (goal: rate >= 0.9).

OUTPOST_BENCH_QUICK=1 shortens the run (20 s, 50k backlog); OUTPOST_BENCH_RESULT names a file for the figures
as JSON (benchmarks/run_all.py). A busy machine shows in "whole machine" CPU: read the figures with it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import Engine, text  # noqa: E402

from benchmarks.figures import measured  # noqa: E402
from schemas.credentials import hash_secret, new_secret  # noqa: E402
from sim.simulate.build_demo_data import DISTRICTS_PATH, NEIGHBORHOODS_PATH  # noqa: E402
from store.devices import register_unknown  # noqa: E402
from store.engine import open_engine  # noqa: E402
from store.grids import import_grids  # noqa: E402
from store.migrate import migrate  # noqa: E402
from store.registry import set_device_credentials  # noqa: E402
from store.settings import StoreSettings  # noqa: E402
from tests.support.metrics import scrape  # noqa: E402
from tests.support.services import Mosquitto, PgCluster, free_port  # noqa: E402

TOPIC = "outpost/v1/devices/{}/fix"
KINDS = ("outpost", "raw")
# The grids comparison: outpost ingest feeding a live picture with its patrol watch, without grids, then
# with the 51 shipped SF grids (10 police districts, 41 neighbourhoods) loaded.
GRID_KINDS = ("live", "grids")
STEADY_AFTER_S = 2.0  # the sustained rate is measured after this ramp-up


def say(line: str) -> None:
    print(line, flush=True)


# ------------------------------------------------------------------------------------------ load generator
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _generate(
    url: str, devices: list[str], rate_per_s: float, duration_s: float, start_at: float, out: Any
) -> None:
    """One publisher process: round-robin over its devices at its share of the rate, QoS 1.

    A bare MQTT 3.1.1 client on a socket: PUBLISH packets are built with a few byte operations and written
    together every 5 ms, PUBACKs are counted (a general client library costs ~10x the CPU per message here,
    and the generator must not be what limits the benchmark on a 2-core machine)."""
    import select
    import socket

    host, port = url.removeprefix("mqtt://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client_id = f"bench-gen-{os.getpid()}".encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x00" + len(client_id).to_bytes(2, "big") + client_id  # keepalive off
    sock.sendall(b"\x10" + _varint(len(body)) + body)
    if sock.recv(4) != b"\x20\x02\x00\x00":
        raise RuntimeError("CONNECT refused")
    topics = {d: TOPIC.format(d).encode() for d in devices}
    seqs, last_ms = dict.fromkeys(devices, 0), dict.fromkeys(devices, 0)
    sent, acked, rest, n = 0, 0, b"", len(devices)
    time.sleep(max(0.0, start_at - time.time()))
    t0 = time.monotonic()
    while (elapsed := time.monotonic() - t0) < duration_s or acked < sent:
        now_ms, packets = int(time.time() * 1000), []
        due = int(min(elapsed, duration_s) * rate_per_s) - sent
        for _ in range(due if sent - acked < 60000 else 0):  # packet ids must not wrap onto unacked ones
            d = devices[sent % n]
            sent += 1
            seqs[d] += 1
            ts = last_ms[d] = max(now_ms, last_ms[d] + 1)  # unique per device: (device_id, ts) is the key
            lon, lat = where(d, seqs[d])
            payload = b'{"ts":%d,"lat":%.6f,"lon":%.6f,"seq":%d}' % (ts, lat, lon, seqs[d])
            topic = topics[d]
            variable = len(topic).to_bytes(2, "big") + topic + (sent % 65535 + 1).to_bytes(2, "big")
            packets.append(b"\x32" + _varint(len(variable) + len(payload)) + variable + payload)
        if packets:
            sock.sendall(b"".join(packets))
        while select.select([sock], [], [], 0.005 if not packets else 0)[0]:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            data = rest + chunk
            acked += len(data) // 4  # only PUBACKs (4 bytes) come back to this client
            rest = data[len(data) - len(data) % 4 :]
    sock.sendall(b"\xe0\x00")
    sock.close()
    out.put((seqs, time.process_time()))


# Devices are spread over San Francisco (where the shipped grids are), each driving its own straight line
# at ~1 m a fix (12 m/s at 12 fixes/s), back to its start every 2,000 fixes: a grid lookup sees units
# everywhere, near borders and crossing them, as a real fleet would.
SF_BOX = (-122.51, 37.71, 0.14, 0.10)  # west, south, width, height (degrees)
STEP_DEG = 1e-5


def where(device: str, seq: int) -> tuple[float, float]:
    """(lon, lat) of a device's `seq`-th fix."""
    i = int(device.rsplit("-", 1)[-1]) if device[-1].isdigit() else hash(device)
    west, south, width, height = SF_BOX
    k = seq % 2000
    angle = i * 2.399963
    return (
        west + (i * 0.6180339887 % 1.0) * width + k * STEP_DEG * math.cos(angle),
        south + (i * 0.7548776662 % 1.0) * height + k * STEP_DEG * math.sin(angle),
    )


def publish_load(
    url: str, devices: list[str], rate_per_s: float, duration_s: float, processes: int, start_at: float
) -> dict[str, int]:
    """Publish from `processes` processes from epoch time `start_at` (~2 s to start them); returns each
    device's last seq (the fixes published for it) and the generator's CPU seconds."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    shares = [devices[i::processes] for i in range(processes)]
    procs = [
        ctx.Process(
            target=_generate,
            args=(url, share, rate_per_s * len(share) / len(devices), duration_s, start_at, out),
        )
        for share in shares
    ]
    for p in procs:
        p.start()
    seqs: dict[str, int] = {}
    cpu_s = 0.0
    for _ in procs:
        got, cpu = out.get(timeout=duration_s + 900)
        seqs.update(got)
        cpu_s += cpu
    for p in procs:
        p.join()
    return seqs, cpu_s


# ------------------------------------------------------------------------------------------ raw baseline
def raw_subscriber(
    url: str, database_url: str, client_id: str, batch: int = 2000, age_s: float = 0.2
) -> None:
    """The raw baseline (see the module docstring); runs until SIGTERM."""
    import msgspec
    import paho.mqtt.client as paho
    import psycopg
    from paho.mqtt.enums import CallbackAPIVersion

    class Raw(msgspec.Struct):
        ts: int
        lat: float
        lon: float
        seq: int

    decode = msgspec.json.Decoder(Raw).decode
    conn = psycopg.connect(database_url)
    conn.execute(
        "CREATE TEMP TABLE staging (device_id text, unit_id text, ts timestamptz, received_at "
        "timestamptz, lon float8, lat float8, seq int8, flags int4) ON COMMIT DELETE ROWS"
    )
    conn.commit()
    rows: list[tuple[Any, ...]] = []
    mids: list[int] = []
    state = {"first": 0.0, "stop": False}
    signal.signal(signal.SIGTERM, lambda *_: state.update(stop=True))

    def on_message(client: Any, userdata: Any, m: Any) -> None:
        device = m.topic.split("/")[3]
        r = decode(m.payload)
        rows.append(
            (
                device,
                device,
                datetime.fromtimestamp(r.ts / 1000, UTC),
                datetime.now(UTC),
                r.lon,
                r.lat,
                r.seq,
                0,
            )
        )
        mids.append(m.mid)
        state["first"] = state["first"] or time.monotonic()

    def flush(client: Any) -> None:
        with conn.cursor() as cur:
            with cur.copy("COPY staging FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(
                    ["text", "text", "timestamptz", "timestamptz", "float8", "float8", "int8", "int4"]
                )
                for row in rows:
                    copy.write_row(row)
            cur.execute(
                "INSERT INTO fixes (device_id, unit_id, ts, received_at, lon, lat, seq, flags) "
                "SELECT * FROM staging ON CONFLICT (device_id, ts) DO NOTHING"
            )
        conn.commit()
        for mid in mids:
            client.ack(mid, 1)
        rows.clear()
        mids.clear()
        state["first"] = 0.0

    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=False,
        manual_ack=True,
    )
    client.on_message = on_message
    client.on_connect = lambda c, *a: c.subscribe(TOPIC.format("+"), qos=1)
    host, port = url.removeprefix("mqtt://").split(":")
    client.connect(host, int(port), keepalive=30)
    while not state["stop"]:
        client.loop(timeout=0.02)
        if rows and (len(rows) >= batch or time.monotonic() - state["first"] >= age_s):
            flush(client)
    if rows:
        flush(client)
    client.loop(timeout=0.1)
    client.disconnect()


# ------------------------------------------------------------------------------------------ processes
def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds spent by every process on the machine (non-idle), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def postgres_pids(cluster: PgCluster) -> list[int]:
    """The cluster's postmaster and its children (backends, WAL writer, checkpointer…)."""
    master = int((cluster.datadir / "postmaster.pid").read_text().split()[0])
    pids = [master]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == master:
                pids.append(int(stat.parent.name))
    return pids


class CpuWatch:
    """CPU use of groups of processes between `start` and `stop`, in % of one core."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self._groups = groups
        self._t0, self._total0 = 0.0, 0.0
        self._cpu0: dict[str, float] = {}

    def _sample(self) -> dict[str, float]:
        out = {}
        for name, pids in self._groups.items():
            out[name] = 0.0
            for pid in pids:
                with contextlib.suppress(OSError, ValueError):
                    out[name] += cpu_seconds(pid)
        return out

    def start(self) -> None:
        self._t0, self._cpu0, self._total0 = time.monotonic(), self._sample(), machine_busy_s()

    def stop(self) -> dict[str, float]:
        elapsed = time.monotonic() - self._t0
        now = self._sample()
        shares = {k: round((now[k] - self._cpu0[k]) / elapsed * 100, 1) for k in now}
        shares["whole machine"] = round((machine_busy_s() - self._total0) / elapsed * 100, 1)
        return shares


def start_subscriber(
    kind: str, broker: Mosquitto, db_url: str, work: Path
) -> tuple[subprocess.Popen[bytes], int]:
    """(process, metrics port) of the outpost ingest or the raw baseline, with a persistent session."""
    log = (work / f"{kind}.log").open("ab")
    port = free_port()
    if kind == "raw":
        cmd = [sys.executable, __file__, "--raw-subscriber", broker.url, db_url, "bench-raw"]
        return subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT), port
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
    env.update(
        OUTPOST_DATABASE_URL=db_url,
        OUTPOST_MQTT_URL=broker.url,
        OUTPOST_SPOOL_DIR=str(work / "spool"),
        OUTPOST_MQTT_CLIENT_ID=f"bench-{kind}",
    )
    cmd = [sys.executable, "-m", "outpost.ingest_only", "--log-level", "WARNING", "--metrics-port", str(port)]
    if kind in GRID_KINDS:
        cmd.append("--live-picture")
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT), port


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


async def wait_connected(proc: subprocess.Popen[bytes], broker: Mosquitto, client_id: str, nth: int) -> None:
    """Until the broker's log shows `client_id` connected for the `nth` time (it subscribes right after)."""
    log = broker.root / "mosquitto.log"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{client_id} exited with {proc.returncode}")
        if log.exists() and log.read_text(errors="replace").count(f" as {client_id} ") >= nth:
            await asyncio.sleep(1.0)
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{client_id} never connected")


# ------------------------------------------------------------------------------------------ database
def one(engine: Engine, sql: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql)).one()


def prepare_db(cluster: PgCluster, name: str, devices: list[str]) -> Engine:
    """A migrated database with the benchmark's `inserted_at` column and every device registered."""
    cluster.psql(f"CREATE DATABASE {name}")
    url = cluster.url(name)
    engine = open_engine(url, pool_size=2)
    migrate(engine, StoreSettings(database_url=url))
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE fixes ADD COLUMN inserted_at timestamptz DEFAULT clock_timestamp()"))
    now = datetime.now(UTC)
    digest = hash_secret(new_secret())  # one for every device: scrypt costs ~50 ms a hash
    for d in devices:
        register_unknown(engine, d, now=now)
        set_device_credentials(engine, d, digest)  # or ingest refuses the device (no_credentials)
    if name == "bench_grids":
        for path, level, prop in (
            (DISTRICTS_PATH, "police", "district"),
            (NEIGHBORHOODS_PATH, "community", "neighborhood"),
        ):
            doc = json.loads(path.read_text(encoding="utf-8"))
            import_grids(engine, doc, level=level, name_property=prop, now=now)
    return engine


def percentiles(engine: Engine, start: str, end: str, where: str) -> tuple[float, float, float]:
    """p50, p99 and max of `end - start` over the fixes matching `where`, ms."""
    row = one(
        engine,
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY l), percentile_cont(0.99) WITHIN GROUP"
        f" (ORDER BY l), max(l) FROM (SELECT extract(epoch FROM {end} - {start}) * 1000 AS l"
        f" FROM fixes WHERE {where}) s",
    )
    return float(row[0] or 0), float(row[1] or 0), float(row[2] or 0)


async def wait_stored(engine: Engine, expected: int, quiet_s: float = 30.0) -> None:
    """Until `expected` fixes are stored, or nothing more arrived for `quiet_s` (then some are missing)."""
    last, last_change = -1, time.monotonic()
    while (n := one(engine, "SELECT count(*) FROM fixes")[0]) < expected:
        if n != last:
            last, last_change = n, time.monotonic()
        elif time.monotonic() - last_change > quiet_s:
            say(f"  stalled at {n:,} of {expected:,} for {quiet_s:.0f} s: giving up")
            return
        await asyncio.sleep(0.2)


# ------------------------------------------------------------------------------------------ phases
@dataclass
class Result:
    """One subscriber's figures."""

    kind: str
    published: int = 0
    steady_rate: float = 0.0  # fixes/s stored in the steady state of the sustained phase
    latency_ms: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # leg → p50, p99, max
    cpu_s_per_1000: float = 0.0
    cpu_share: dict[str, float] = field(default_factory=dict)
    lost: int = 0
    duplicated: int = 0
    redelivered: float = 0.0  # duplicates the subscriber saw and ignored (outpost's metric)
    drain_rate: float = 0.0  # fixes/s draining the backlog
    drain_cpu_s_per_1000: float = 0.0


async def sustained(
    r: Result,
    args: argparse.Namespace,
    broker: Mosquitto,
    cluster: PgCluster,
    engine: Engine,
    devices: list[str],
    work: Path,
) -> None:
    proc, port = start_subscriber(r.kind, broker, cluster.url(f"bench_{r.kind}"), work)
    await wait_connected(proc, broker, f"bench-{r.kind}", 1)
    say(f"{r.kind}: subscribed; publishing {args.rate:,.0f} fixes/s for {args.duration:.0f} s")
    watch = CpuWatch(
        {
            "subscriber": [proc.pid],
            "broker": [broker.proc.pid] if broker.proc else [],
            "postgres": postgres_pids(cluster),
        }
    )
    cpu0, start_at = cpu_seconds(proc.pid), time.time() + 3.0
    watch.start()
    seqs, generator_cpu_s = await asyncio.to_thread(
        publish_load, broker.url, devices, args.rate, args.duration, args.publishers, start_at
    )
    r.published = sum(seqs.values())
    await wait_stored(engine, r.published)
    r.cpu_share = watch.stop()
    r.cpu_share["generator"] = round(generator_cpu_s / args.duration * 100, 1)
    stored, distinct = one(engine, "SELECT count(*), count(DISTINCT (device_id, seq)) FROM fixes")
    r.lost, r.duplicated = r.published - distinct, stored - distinct
    r.cpu_s_per_1000 = (cpu_seconds(proc.pid) - cpu0) / max(stored, 1) * 1000
    metrics = f"http://127.0.0.1:{port}/metrics"
    r.redelivered = scrape(metrics, "outpost_ingest_duplicates_ignored_total") if r.kind == "outpost" else 0.0
    stop(proc)
    steady_from, steady_to = start_at + STEADY_AFTER_S, start_at + args.duration
    steady = f"inserted_at BETWEEN to_timestamp({steady_from}) AND to_timestamp({steady_to})"
    r.steady_rate = one(engine, f"SELECT count(*) FROM fixes WHERE {steady}")[0] / (
        args.duration - STEADY_AFTER_S
    )
    r.latency_ms = {
        "publish→insert": percentiles(engine, "ts", "inserted_at", "true"),
        "publish→receive": percentiles(engine, "ts", "received_at", "true"),
        "receive→insert": percentiles(engine, "received_at", "inserted_at", "true"),
    }
    say(
        f"{r.kind}: stored {stored:,}; CPU % of one core: "
        + ", ".join(f"{k} {v:.0f}" for k, v in r.cpu_share.items())
    )


async def capacity(
    r: Result,
    args: argparse.Namespace,
    broker: Mosquitto,
    cluster: PgCluster,
    engine: Engine,
    devices: list[str],
    work: Path,
) -> None:
    """Queue a backlog for the (persistent, now absent) session, then time its drain."""
    mark = one(engine, "SELECT max(inserted_at) FROM fixes")[0]
    before = one(engine, "SELECT count(*) FROM fixes")[0]
    say(f"{r.kind}: queueing a backlog of {args.backlog:,} while the subscriber is away")
    seqs, _cpu = await asyncio.to_thread(
        publish_load,
        broker.url,
        devices,
        args.backlog_rate,
        args.backlog / args.backlog_rate,
        args.publishers,
        time.time() + 3.0,
    )
    proc, _port = start_subscriber(r.kind, broker, cluster.url(f"bench_{r.kind}"), work)
    cpu0 = cpu_seconds(proc.pid)
    await wait_stored(engine, before + sum(seqs.values()))
    r.drain_cpu_s_per_1000 = (cpu_seconds(proc.pid) - cpu0) / max(sum(seqs.values()), 1) * 1000
    stop(proc)
    n, span = one(
        engine,
        "SELECT count(*), extract(epoch FROM max(inserted_at) - min(inserted_at)) FROM fixes"
        f" WHERE inserted_at > '{mark.isoformat()}'",
    )
    r.drain_rate = n / float(span) if span else float("nan")
    say(f"{r.kind}: drained {n:,} at {r.drain_rate:,.0f} fixes/s")


# ------------------------------------------------------------------------------------------ report
def report(results: dict[str, Result], args: argparse.Namespace) -> dict[str, Any]:
    say(
        f"\n== ingest: {args.devices} devices, {args.rate:,.0f} fixes/s offered for {args.duration:.0f} s, "
        f"QoS 1, {args.publishers} publisher processes, {os.cpu_count()} CPUs (shared by everything) =="
    )
    say(
        f"{'':8} {'stored/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'CPU s/1k':>8} {'published':>10} "
        f"{'lost':>5} {'dup':>4} {'drain/s':>8}"
    )
    for r in results.values():
        p50, p99, pmax = r.latency_ms["publish→insert"]
        say(
            f"{r.kind:8} {r.steady_rate:>9,.0f} {p50:>7.0f} {p99:>7.0f} {pmax:>7.0f} "
            f"{r.cpu_s_per_1000:>8.3f} {r.published:>10,} {r.lost:>5} {r.duplicated:>4} {r.drain_rate:>8,.0f}"
        )
    for r in results.values():
        legs = "; ".join(
            f"{k} {a:.0f}/{b:.0f}" for k, (a, b, _m) in r.latency_ms.items() if k != "publish→insert"
        )
        say(f"{r.kind:8} latency legs p50/p99 ms: {legs}; CPU %: {r.cpu_share}")
    for r in results.values():
        measured(f"{r.kind}: fixes/s stored in the steady state", r.steady_rate)
    figures: dict[str, Any] = {k: asdict(r) for k, r in results.items()}
    out, raw = results["outpost"], results.get("raw")
    if raw is not None:
        figures["ratio_sustained"] = out.steady_rate / raw.steady_rate
        figures["ratio_capacity"] = out.drain_rate / raw.drain_rate if raw.drain_rate else None
        figures["ratio_cpu_per_fix"] = out.cpu_s_per_1000 / raw.cpu_s_per_1000
        say(
            f"ratio outpost/raw: sustained {figures['ratio_sustained']:.2f}, capacity (drain) "
            f"{figures['ratio_capacity'] or float('nan'):.2f}; "
            f"CPU per fix {figures['ratio_cpu_per_fix']:.2f}x"
        )
    live, grids = results.get("live"), results.get("grids")
    if live is not None and grids is not None:
        figures["ratio_grids_rate"] = grids.steady_rate / live.steady_rate
        figures["ratio_grids_cpu_per_fix"] = grids.cpu_s_per_1000 / live.cpu_s_per_1000
        say(
            f"live picture without grids: {live.steady_rate:,.0f} fixes/s, "
            f"CPU {live.cpu_s_per_1000:.3f} s/1k; "
            f"with the 51 SF grids: {grids.steady_rate:,.0f} fixes/s, CPU {grids.cpu_s_per_1000:.3f} s/1k; "
            f"ratio with/without: rate {figures['ratio_grids_rate']:.2f} (goal >= 0.9), "
            f"CPU per fix {figures['ratio_grids_cpu_per_fix']:.2f}x"
        )
    p99 = out.latency_ms["publish→insert"][1]
    verdict = {
        "sustained >= 10,000 fixes/s": out.steady_rate >= 10000,
        "p99 <= 500 ms": p99 <= 500,
        "0 lost, 0 duplicated": not (out.lost or out.duplicated),
        "ratio >= 0.6": figures.get("ratio_capacity") is not None and figures["ratio_capacity"] >= 0.6,
    }
    say("targets: " + "; ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in verdict.items()))
    figures["targets"] = verdict
    return figures


async def main(args: argparse.Namespace) -> None:
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"outpost-bench-ingest-{os.getpid()}"
    work.mkdir(parents=True)
    devices = [f"bench-{i:05d}" for i in range(args.devices)]
    cluster, broker = PgCluster().start(), Mosquitto().start()
    try:
        kinds: tuple[str, ...] = ("outpost",) if args.outpost_only else KINDS
        kinds += () if args.no_grids else GRID_KINDS
        engines = {kind: prepare_db(cluster, f"bench_{kind}", devices) for kind in kinds}
        say(f"PostgreSQL :{cluster.port}, Mosquitto :{broker.port}, {len(devices)} devices; logs in {work}")
        results = {kind: Result(kind) for kind in kinds}
        for kind, r in results.items():
            await sustained(r, args, broker, cluster, engines[kind], devices, work)
            if args.backlog and kind not in GRID_KINDS:
                await capacity(r, args, broker, cluster, engines[kind], devices, work)
        figures = report(results, args)
        if target := os.environ.get("OUTPOST_BENCH_RESULT"):
            await asyncio.to_thread(Path(target).write_text, json.dumps(figures, default=str), "utf-8")
    finally:
        broker.close()
        cluster.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    quick = os.environ.get("OUTPOST_BENCH_QUICK") == "1"
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=20.0 if quick else 60.0, help="sustained phase, s (60)")
    # Above the 10,000 fixes/s target, so that "sustains 10,000" is measured, not assumed.
    p.add_argument("--rate", type=float, default=12000.0, help="offered fixes/s in total (12000)")
    p.add_argument("--devices", type=int, default=1000, help="devices (1000)")
    p.add_argument("--publishers", type=int, default=2, help="load generator processes (2)")
    p.add_argument(
        "--backlog", type=int, default=50000 if quick else 100000, help="capacity backlog (0: skip)"
    )
    p.add_argument("--backlog-rate", type=float, default=25000.0, help="publish rate of the backlog, fixes/s")
    p.add_argument("--outpost-only", action="store_true", help="skip the raw baseline")
    p.add_argument("--no-grids", action="store_true", help="skip the live picture with/without grids")
    return p.parse_args(argv)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--raw-subscriber":
        raw_subscriber(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        asyncio.run(main(parse_args()))
