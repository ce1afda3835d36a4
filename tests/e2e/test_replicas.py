"""Past one process: two `outpost ingest` workers on one MQTT 5 shared subscription and two `outpost api`
replicas following the live feed, over one real PostgreSQL and one real Mosquitto, all subprocesses.

- After a burst, both replicas give the same nearest answers, and the right ones, from the feed alone
  (their periodic database sweep is an hour away).
- A unit's status, kind or a new unit, written through one replica, reaches the other's answers.
- A console's live stream on either replica shows the leader's incident and roll-call events, once; a
  roll call is the leader's to start.
- Kill -9 one worker and the leading replica mid-stream: every fix is stored once, the surviving replica
  takes the incident lead and resumes the offer timeouts from the database, and no offer goes out twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import math
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ingest.mqtt.publisher import Publisher
from store.engine import open_engine
from tests.support.http import call
from tests.support.metrics import value as metrics_value
from tests.support.replicas import Cluster, Role, wait_until
from tests.support.services import Mosquitto

pytestmark = pytest.mark.slow

LON0, LAT0 = 4.35, 50.85
PROBES = ((LON0, LAT0), (LON0 + 0.01, LAT0 + 0.005), (LON0 - 0.008, LAT0 - 0.004))


@pytest.fixture
def cluster(pg_url: str, mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Cluster]:
    nodes = Cluster(pg_url, mosquitto.url, tmp_path)
    nodes.create_token()
    try:
        yield nodes
    finally:
        nodes.stop_all()


def _fix(ts_s: float, lon: float, lat: float, seq: int) -> bytes:
    return json.dumps({"ts": int(ts_s * 1000), "lon": lon, "lat": lat, "acc_m": 5, "seq": seq}).encode()


def _publish(url: str, messages: list[tuple[str, bytes]], per_s: float = 0.0) -> None:
    """Publish QoS 1 (paced at `per_s` when given) and wait for every PUBACK."""

    async def run() -> None:
        async with Publisher(url, client_id=f"test-devices-{time.monotonic_ns()}", protocol="5") as pub:
            started = time.monotonic()
            for n, (topic, payload) in enumerate(messages):
                pub.publish(topic, payload, qos=1)
                if per_s and n % 100 == 99:
                    await asyncio.sleep(max(0.0, started + (n + 1) / per_s - time.monotonic()))
                elif n % 1000 == 999:
                    await pub.wait_pending_below(2000)
            await pub.flush(timeout_s=120)

    asyncio.run(run())


def _nearest(replica: Role, token: str, lon: float, lat: float) -> list[tuple[str, float, float]]:
    status, body = call("GET", f"{replica.url}/v1/units/nearest?lon={lon}&lat={lat}&k=15", token)
    if status != 200:
        return []
    return [(u["id"], u["lon"], u["lat"]) for u in body["units"]]


def _haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * 6_371_008.8 * math.asin(math.sqrt(a))


def _start(*roles: Role) -> None:
    for role in roles:
        role.start()
    for role in roles:
        wait_until(role.ready, f"{role.name} ready")


def test_both_replicas_give_the_same_right_nearest_answers_after_a_burst(cluster: Cluster) -> None:
    workers = [cluster.ingest("ingest-a"), cluster.ingest("ingest-b")]
    replicas = [cluster.api(f"api-{n}", OUTPOST_API_FOLLOW_SWEEP_S="3600") for n in (1, 2)]
    _start(*workers, *replicas)
    now_s = time.time() - 30
    final: dict[str, tuple[float, float]] = {}
    messages = []
    for step in range(5):  # every device moves five times; its last fix is where it is
        for d in range(200):
            lon = LON0 + (d % 20 - 10) * 0.002 + step * 0.0003
            lat = LAT0 + (d // 20 - 5) * 0.002
            messages.append((f"outpost/v1/devices/dev-{d:03}/fix", _fix(now_s + step, lon, lat, step)))
            final[f"dev-{d:03}"] = (lon, lat)
    _publish(cluster.mqtt_url, messages)
    for lon, lat in PROBES:
        order = sorted(final, key=lambda d: _haversine_m(lon, lat, *final[d]))[:15]
        expected = [(d, *final[d]) for d in order]
        for replica in replicas:
            wait_until(
                lambda r=replica, p=(lon, lat), e=expected: _nearest(r, cluster.token, *p) == e,
                f"{replica.name} nearest",
            )
    for replica in replicas:  # every device's last fix reached each picture by the feed, and its lag shows
        status, body = call("GET", f"{replica.url}/metrics", cluster.token)
        assert status == 200, body
        metrics = body.decode()
        assert metrics_value(metrics, "outpost_picture_lag_seconds_count", via="feed") >= len(final), (
            replica.name
        )
        gaps = metrics_value(metrics, "outpost_api_feed_gaps_total")
        assert gaps == metrics_value(metrics, "outpost_api_feed_invalid_total") == 0


def _available_near(replica: Role, token: str, kind: str = "") -> list[str]:
    query = f"lon={LON0}&lat={LAT0}&k=50&status=available" + (f"&kind={kind}" if kind else "")
    status, body = call("GET", f"{replica.url}/v1/units/nearest?{query}", token)
    return [u["id"] for u in body["units"]] if status == 200 else []


def test_a_unit_changed_on_one_replica_is_changed_on_the_other(cluster: Cluster) -> None:
    """Status, kind and a new unit, each written through one replica, reach the other one's nearest answers
    by the database's notification alone (no sweep within the test, no restart)."""
    worker = cluster.ingest("ingest-a")
    one, two = (cluster.api(f"api-{n}", OUTPOST_API_FOLLOW_SWEEP_S="3600") for n in (1, 2))
    _start(worker, one, two)
    now_s = time.time() - 30
    devices = [f"dev-{d:02}" for d in range(20)]
    topics = [
        (f"outpost/v1/devices/{d}/fix", _fix(now_s, LON0 + i * 1e-4, LAT0, 0)) for i, d in enumerate(devices)
    ]
    _publish(cluster.mqtt_url, topics)
    for replica in (one, two):
        wait_until(lambda r=replica: len(_available_near(r, cluster.token)) == 20, f"{replica.name} sees 20")

    status, body = call("POST", f"{one.url}/v1/units/dev-03/status", cluster.token, {"status": "busy"})
    assert status == 200, body
    wait_until(lambda: "dev-03" not in _available_near(two, cluster.token), "api-2 hears dev-03 is busy")

    status, body = call("PATCH", f"{two.url}/v1/units/dev-07", cluster.token, {"kind": "auxiliary"})
    assert status == 200, body
    wait_until(
        lambda: _available_near(one, cluster.token, "auxiliary") == ["dev-07"], "api-1 hears dev-07's kind"
    )

    # A unit created on one replica, whose device then reports: the other takes it as the registry has it
    # (before, it took a unit it did not know for an available police unit of the same id).
    new = {"id": "late-unit", "name": "Late", "kind": "auxiliary", "status": "available"}
    status, body = call("POST", f"{one.url}/v1/units", cluster.token, new)
    assert status == 201, body
    _publish(cluster.mqtt_url, [("outpost/v1/devices/late-unit/fix", _fix(time.time() - 5, LON0, LAT0, 1))])
    wanted = ["late-unit", "dev-07"]
    wait_until(lambda: _available_near(two, cluster.token, "auxiliary") == wanted, "api-2 knows late-unit")
    status, body = call("POST", f"{two.url}/v1/units/dev-03/status", cluster.token, {"status": "available"})
    assert status == 200, body
    wait_until(lambda: "dev-03" in _available_near(one, cluster.token), "api-1 hears dev-03 is back")


class _Stream:
    """A console's `/v1/stream` on one replica, read in a thread: the events it was sent, by type."""

    def __init__(self, replica: Role, token: str) -> None:
        host, port = replica.url.removeprefix("http://").split(":")
        self._conn = http.client.HTTPConnection(host, int(port), timeout=120)
        self._conn.request("GET", "/v1/stream", headers={"Authorization": f"Bearer {token}"})
        response = self._conn.getresponse()
        assert response.status == 200, response.read()
        self.events: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, args=(response,), daemon=True)
        self._reader.start()

    def _read(self, response: http.client.HTTPResponse) -> None:
        with contextlib.suppress(Exception):  # it ends when `close` cuts the connection
            for line in response:
                if line.startswith(b"data: "):
                    self.events.append(json.loads(line[len(b"data: ") :]))

    def of(self, kind: str, record_id: str) -> list[dict[str, Any]]:
        """The events of `kind` about an incident or a roll call."""
        key = "rollcall_id" if kind.startswith("rollcall.") else "incident_id"
        return [e for e in list(self.events) if e.get("type") == kind and e.get(key) == record_id]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
        self._reader.join(timeout=10)


def test_a_console_on_either_replica_sees_the_leaders_events(cluster: Cluster) -> None:
    replicas = [cluster.api(f"api-{n}") for n in (1, 2)]
    _start(cluster.ingest("ingest-a"), *replicas)
    wait_until(lambda: _leads_one(replicas, cluster.token), "one replica leads")
    consoles = [_Stream(replica, cluster.token) for replica in replicas]
    try:
        time.sleep(0.5)  # both streams subscribed
        incident = {"lon": LON0, "lat": LAT0, "category": "theft", "priority": "P3", "source": "call"}
        leader, created, _ = _leader(replicas, cluster.token, incident)
        follower = next(r for r in replicas if r is not leader)
        # A roll call is the leader's to start too: the follower refuses it, naming the leader.
        unit = {"id": "rc-unit", "name": "RC", "kind": "police", "status": "available"}
        assert call("POST", f"{follower.url}/v1/units", cluster.token, unit)[0] == 201
        scope = {"scope": {"kind": "units", "units": ["rc-unit"]}}
        status, refused = call("POST", f"{follower.url}/v1/rollcalls", cluster.token, scope)
        assert status == 503 and refused["leader"] == _leader_name(leader), refused
        status, rollcall = call("POST", f"{leader.url}/v1/rollcalls", cluster.token, scope)
        assert status == 201, rollcall
        for console, replica in zip(consoles, replicas, strict=True):
            wait_until(lambda c=console: c.of("incident.created", created["id"]), f"{replica.name} incident")
            wait_until(
                lambda c=console: c.of("rollcall.started", rollcall["id"]), f"{replica.name} roll call"
            )
        time.sleep(1.0)  # an event relayed twice, or echoed back to the leader, would show by now
        for console, replica in zip(consoles, replicas, strict=True):
            assert len(console.of("incident.created", created["id"])) == 1, replica.name
            assert len(console.of("rollcall.started", rollcall["id"])) == 1, replica.name
    finally:
        for console in consoles:
            console.close()


def _offers_heard(mosquitto_port: int, out: Path) -> subprocess.Popen[bytes]:
    """Every message on every device's offers topic, one a line (topic, payload), until terminated."""
    cmd = ["mosquitto_sub", "-p", str(mosquitto_port), "-q", "1", "-v", "-t", "outpost/v1/devices/+/offers"]
    return subprocess.Popen(cmd, stdout=out.open("wb"))


def _leader(replicas: list[Role], token: str, body: dict[str, Any]) -> tuple[Role, dict[str, Any], Any]:
    """The replica that accepts an incident write (the others refuse it, naming the leader)."""
    refusals = []
    for replica in replicas:
        status, answer = call("POST", f"{replica.url}/v1/incidents", token, body)
        if status == 201:
            return replica, answer, refusals
        assert status == 503, answer
        refusals.append(answer)
    raise AssertionError(f"no replica leads yet: {refusals}")


def test_kill_a_worker_and_the_leading_replica_mid_stream(cluster: Cluster, mosquitto: Mosquitto) -> None:
    workers = [cluster.ingest("ingest-a"), cluster.ingest("ingest-b")]
    timeouts = {"OUTPOST_OFFER_TIMEOUT_S": "3", "OUTPOST_API_FOLLOW_SWEEP_S": "5"}
    replicas = [cluster.api(f"api-{n}", **timeouts) for n in (1, 2)]
    _start(*workers, *replicas)
    start_s = time.time() - 120  # device times in the past, all within the dispatch window (300 s)
    responders = [
        (f"outpost/v1/devices/resp-{d:02}/fix", _fix(start_s, LON0 + d * 1e-4, LAT0, 0)) for d in range(12)
    ]
    _publish(cluster.mqtt_url, responders)
    for replica in replicas:
        wait_until(
            lambda r=replica: len(_nearest(r, cluster.token, LON0, LAT0)) == 12, f"{replica.name} sees units"
        )
    heard_path = cluster.root / "offers.txt"
    heard = _offers_heard(mosquitto.port, heard_path)
    time.sleep(0.5)  # subscribed before the first offer goes out
    incident = {"lon": LON0, "lat": LAT0, "category": "assault", "priority": "P2", "source": "call"}
    wait_until(lambda: _leads_one(replicas, cluster.token), "one replica leads")
    leader, created, refusals = _leader(replicas, cluster.token, incident)
    assert all(r["leader"] == _leader_name(leader) for r in refusals)  # the follower names the leader
    survivor = next(r for r in replicas if r is not leader)

    stream = [  # 20,000 fixes of 400 devices, a minute apart in device time
        (f"outpost/v1/devices/str-{d:03}/fix", _fix(start_s + 1 + n, LON0 + 0.05, LAT0 + d * 1e-4, n))
        for n in range(50)
        for d in range(400)
    ]
    streaming = threading.Thread(target=_publish, args=(cluster.mqtt_url, stream, 2500.0))
    streaming.start()
    wait_until(lambda: _stored(cluster.pg_url) > 12 + 4000, "the stream under way")
    workers[0].kill()
    leader.kill()
    killed_at_s = time.time()
    workers[0].start()  # the same client id: Mosquitto kept its session and the messages it never acked
    streaming.join(timeout=180)
    assert not streaming.is_alive()

    wait_until(lambda: _stored(cluster.pg_url) >= 12 + len(stream), "every fix stored", timeout_s=120)
    rows, distinct = _counts(cluster.pg_url)
    assert (rows, distinct) == (12 + len(stream), 12 + len(stream))  # 0 lost, 0 duplicated

    url = f"{survivor.url}/v1/incidents/{created['id']}"
    wait_until(
        lambda: call("POST", f"{survivor.url}/v1/incidents", cluster.token, incident)[0] == 201,
        "survivor leads",
    )
    wait_until(
        lambda: _offered_after(call("GET", url, cluster.token)[1], killed_at_s),
        "an offer resumed by the survivor",
    )
    time.sleep(1.0)  # the last offer's message reaches the listener
    heard.terminate()
    heard.wait(timeout=10)
    sent = Counter(
        json.loads(line.split(" ", 1)[1])["offer_id"]
        for line in heard_path.read_text().splitlines()
        if json.loads(line.split(" ", 1)[1]).get("type") == "offer"
    )
    offers = call("GET", url, cluster.token)[1]["offers"]
    resumed = {o["id"] for o in offers if _at(o["offered_at"]) > killed_at_s}
    assert sent and max(sent.values()) == 1  # no offer sent twice
    # Every offer the survivor made was sent (one the leader made as it died may not have been: it times
    # out like any unanswered offer, and the next unit is offered the incident).
    assert resumed <= set(sent)

    final = {f"str-{d:03}": (LON0 + 0.05, LAT0 + d * 1e-4) for d in range(400)}
    probe = (LON0 + 0.05, LAT0 + 0.02)
    order = sorted(final, key=lambda d: _haversine_m(*probe, *final[d]))[:15]
    expected = [(d, *final[d]) for d in order]
    wait_until(lambda: _nearest(survivor, cluster.token, *probe) == expected, "survivor's nearest")


def _leads_one(replicas: list[Role], token: str) -> bool:
    # An empty body reaches the leader's handler (400/422, nothing created); followers refuse it first (503).
    return any(call("POST", f"{r.url}/v1/incidents", token, {})[0] != 503 for r in replicas)


def _leader_name(replica: Role) -> str:
    assert replica.proc is not None
    return f"{socket.gethostname()}:{replica.port}:{replica.proc.pid}"


def _at(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _offered_after(record: dict[str, Any], at_s: float) -> bool:
    return any(_at(o["offered_at"]) > at_s for o in record.get("offers", []))


def _stored(pg_url: str) -> int:
    return _counts(pg_url)[0]


def _counts(pg_url: str) -> tuple[int, int]:
    engine = open_engine(pg_url, pool_size=1)
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT count(*), count(DISTINCT (device_id, ts)) FROM fixes")).one()
    finally:
        engine.dispose()
    return int(row[0]), int(row[1])
