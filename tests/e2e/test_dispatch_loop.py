"""The closed dispatch loop end to end on the real stack: Mosquitto, ingest (MQTT → validate → store →
live picture), the database (PostgreSQL and SQLite), the API app (init_app + the incidents plugin) on a
free port, offers to the officers' phones over MQTT and their replies back. Timers run on a ManualClock.

Units drive the shipped northern San Francisco road graph: a route is replayed as fixes, one every 15 s
of clock time, published by the unit's phone like a real device.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import msgspec
import pytest

from dispatch.incidents.notify import device_messages
from geo.distance import haversine_m
from ingest.mqtt.publisher import Publisher
from ingest.runner import run_ingest
from ingest.settings import IngestSettings
from sim.simulate.roads import RoadGraph, shipped_graph
from tests.dispatch.incidents.sf_grids import COMMUNITY, POLICE, assign, load_sf
from tests.dispatch.incidents.world import Served, point, served
from tests.ingest.mqtt_collect import Collected, collect
from tests.support.services import Mosquitto

pytestmark = pytest.mark.slow

FIX_EVERY_S = 15.0
# Where the incident is: Union Square (snapped to the road graph).
INCIDENT_NEAR = (-122.4075, 37.7880)


@dataclass
class Stack:
    """The running stack and the device side."""

    http: Served
    devices: Publisher
    phones: Collected
    replies: list[asyncio.Task[Any]] = field(default_factory=list)

    @property
    def clock_now(self) -> float:
        return self.http.world.clock.now()

    async def fix(self, device_id: str, unit_id: str, at: tuple[float, float]) -> None:
        """The phone publishes a fix taken now; returns once the live picture shows it."""
        ts_ms = round(self.clock_now * 1000)
        payload = msgspec.json.encode({"ts": ts_ms, "lon": at[0], "lat": at[1], "acc_m": 5.0})
        fleet = self.http.world.fleet
        async with asyncio.timeout(20):
            while True:
                self.devices.publish(f"outpost/v1/devices/{device_id}/fix", payload, qos=1)
                for _ in range(25):
                    pos = fleet.position(unit_id)
                    if pos is not None and round(pos.ts_s * 1000) == ts_ms:
                        await self.http.world.service.settle()
                        return
                    await asyncio.sleep(0.02)

    async def reply(self, device_id: str, offer_id: str, answer: str) -> None:
        """The phone answers an offer over MQTT; returns once Outpost has handled the answer."""
        before = len(self.replies)
        self.devices.publish(
            f"outpost/v1/devices/{device_id}/reply",
            msgspec.json.encode({"offer_id": offer_id, "answer": answer}),
            qos=1,
        )
        async with asyncio.timeout(20):
            while len(self.replies) == before:  # noqa: ASYNC110 (the reply comes from another process)
                await asyncio.sleep(0.02)
        result = await self.replies[-1]
        assert result.ok, result.detail
        await self.http.world.service.settle()

    def messages_to(self, device_id: str) -> list[dict[str, Any]]:
        """What the phone received on its offers topic."""
        topic = f"outpost/v1/devices/{device_id}/offers"
        return [msgspec.json.decode(p) for t, p in self.phones.messages if t == topic]


@contextlib.asynccontextmanager
async def running_stack(url: str, broker: Mosquitto, tmp_path: Path) -> AsyncIterator[Stack]:
    async with served(url) as http:
        w = http.world
        notifier = Publisher(broker.url, client_id="outpost-notify")
        await notifier.connect()

        def sink(event: dict[str, Any]) -> None:  # what the composition root wires
            for topic, payload in device_messages(event):
                notifier.publish(topic, payload, qos=1)

        w.bus.device_sink = sink
        stack_replies: list[asyncio.Task[Any]] = []

        def on_device(device_id: str, kind: str, payload: bytes) -> None:
            if kind == "reply":
                stack_replies.append(asyncio.create_task(w.service.handle_device_reply(device_id, payload)))

        settings = IngestSettings(
            mqtt_url=broker.url,
            spool_dir=str(tmp_path / "spool"),
            batch_max_age_ms=20,
            mqtt_client_id="outpost-ingest-e2e",
        )
        stop = asyncio.Event()
        ingest = asyncio.create_task(
            run_ingest(
                settings,
                w.engine,
                on_accepted=w.fleet.apply,
                on_device_message=on_device,
                clock=w.clock.now,
                stop=stop,
            )
        )
        devices = Publisher(broker.url, client_id="phones")
        await devices.connect()
        try:
            async with collect(broker.port, "outpost/v1/devices/+/offers") as phones:
                yield Stack(http, devices, phones, stack_replies)
        finally:
            stop.set()
            await asyncio.wait_for(ingest, 30)
            await devices.close()
            await notifier.close()


def node_at(graph: RoadGraph, origin: int, distance_m: float, bearing_hint: int = 0) -> int:
    """A road node about `distance_m` (straight line) from `origin`."""
    lon0, lat0 = graph.lon[origin], graph.lat[origin]
    ranked = sorted(
        range(graph.node_count),
        key=lambda i: abs(haversine_m(lon0, lat0, graph.lon[i], graph.lat[i]) - distance_m),
    )
    return ranked[bearing_hint]


def drive(graph: RoadGraph, path: list[int], every_s: float = FIX_EVERY_S) -> list[tuple[float, float]]:
    """Positions every `every_s` along the route at its speed limits (capped at 12 m/s: town traffic)."""
    times = [0.0]
    for a, b in itertools.pairwise(path):
        edge = graph.edge(a, b)
        assert edge is not None
        times.append(times[-1] + edge.length_m / min(edge.speed_mps, 12.0))
    samples: list[tuple[float, float]] = []
    t, leg = every_s, 0
    while t < times[-1]:
        while times[leg + 1] < t:
            leg += 1
        f = (t - times[leg]) / (times[leg + 1] - times[leg])
        a, b = path[leg], path[leg + 1]
        samples.append(
            (
                graph.lon[a] + f * (graph.lon[b] - graph.lon[a]),
                graph.lat[a] + f * (graph.lat[b] - graph.lat[a]),
            )
        )
        t += every_s
    samples.append((graph.lon[path[-1]], graph.lat[path[-1]]))
    return samples


async def test_offer_times_out_next_unit_accepts_drives_arrives_and_the_loop_closes(
    store_url: str, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    graph = shipped_graph()
    scene = graph.nearest_node(*INCIDENT_NEAR)
    homes = {
        "a": node_at(graph, scene, 300),
        "b": node_at(graph, scene, 800),
        "c": node_at(graph, scene, 1600),
    }
    route = graph.shortest_path(homes["b"], scene)
    assert route, "the road graph must connect b to the scene"
    scene_at = (graph.lon[scene], graph.lat[scene])
    async with running_stack(store_url, mosquitto, tmp_path) as s:
        w = s.http.world
        for name in homes:
            w.add_unit(f"unit-{name}", device=f"phone-{name}")
        for name, node in homes.items():
            await s.fix(f"phone-{name}", f"unit-{name}", (graph.lon[node], graph.lat[node]))
        reported_at = w.clock.now()

        # A grid worker reports a P2 incident: policy offers it to the nearest available unit, A.
        _, created, _ = await s.http.call(
            "POST",
            "/v1/incidents",
            status=201,
            json={
                "lon": scene_at[0],
                "lat": scene_at[1],
                "category": "assault",
                "priority": "P2",
                "source": "grid_report",
                "description": "fight outside the station",
                "reporter": "grid 7",
                "address": "Union Square",
            },
        )
        base = f"/v1/incidents/{created['id']}"
        assert created["state"] == "offered"
        await s.phones.wait_for(1)
        offer_a = s.messages_to("phone-a")[0]
        assert offer_a["type"] == "offer" and offer_a["incident_id"] == created["id"]

        # A stays silent: after OUTPOST_OFFER_TIMEOUT_S the offer goes to the next nearest, B.
        await w.advance(60)
        await s.phones.wait_for(3)
        assert s.messages_to("phone-a")[-1] == {
            "type": "offer_closed",
            "offer_id": offer_a["offer_id"],
            "incident_id": created["id"],
            "reason": "timed_out",
        }
        offer_b = s.messages_to("phone-b")[0]
        assert w.status("unit-a") == "available" and w.status("unit-b") == "offered"

        # B accepts on its phone, then drives there; telemetry detects departure and arrival.
        await w.advance(15)
        accepted_at = w.clock.now()
        await s.reply("phone-b", offer_b["offer_id"], "accept")
        assert w.status("unit-b") == "assigned"
        home_b = (graph.lon[homes["b"]], graph.lat[homes["b"]])
        left_at = arrived_at = None
        for point in drive(graph, route):
            await w.advance(FIX_EVERY_S)
            await s.fix("phone-b", "unit-b", point)
            if arrived_at is None and haversine_m(*point, *scene_at) <= 75.0:
                arrived_at = w.clock.now()
            elif left_at is None and arrived_at is None and haversine_m(*point, *home_b) >= 100.0:
                left_at = w.clock.now()
        assert left_at is not None and arrived_at is not None
        _, got, _ = await s.http.call("GET", base, "viewer", status=200)
        assert got["state"] == "on_scene" and w.status("unit-b") == "on_scene"

        # Resolve, feedback, evaluation, close: all over HTTP.
        await w.advance(600)
        await s.http.call("POST", f"{base}/resolve", json={"reason": "parties separated"}, status=200)
        assert w.status("unit-b") == "available"
        await s.http.call(
            "POST",
            f"{base}/feedback",
            status=200,
            json={"outcome": "resolved on scene", "officer": "PC B", "notes": "no injuries"},
        )
        await s.http.call(
            "POST",
            f"{base}/evaluation",
            "admin",
            status=200,
            json={"score": 5, "evaluator": "Insp. Gray", "comments": "textbook"},
        )
        await s.http.call("POST", f"{base}/close", "admin", status=200)

        _, got, _ = await s.http.call("GET", base, "viewer", status=200)
        assert got["state"] == "closed"
        assert got["intervals"] == {
            "processing_s": accepted_at - reported_at,  # reported → B accepted (after A timed out)
            "turnout_s": left_at - accepted_at,
            "travel_s": arrived_at - left_at,
            "total_s": arrived_at - reported_at,
        }
        assert [(o["unit_id"], o["state"]) for o in got["offers"]] == [
            ("unit-a", "timed_out"),
            ("unit-b", "accepted"),
        ]
        trail = [(h["event"], h["to_state"], h["actor"]) for h in got["history"]]
        assert trail[:4] == [
            ("create", "new", "token:2:dispatcher"),
            ("offer", "offered", "system:policy"),
            ("timeout", "new", "system:offer_timeout"),
            ("offer", "offered", "system:policy"),
        ]
        assert ("accept", "dispatched", "device:phone-b") in trail
        assert ("en_route", "en_route", "system:telemetry") in trail
        assert ("arrive", "on_scene", "system:telemetry") in trail
        assert trail[-4:] == [
            ("resolve", "resolved", "token:2:dispatcher"),
            ("feedback", "feedback_recorded", "token:2:dispatcher"),
            ("evaluate", "evaluated", "token:1:admin"),
            ("close", "closed", "token:1:admin"),
        ]

        # The decision snapshots: what policy saw each time, in metres from the incident.
        first, second = got["snapshots"]
        assert (first["decision"], first["chosen_unit_id"]) == ("auto_offer", "unit-a")
        assert (second["decision"], second["chosen_unit_id"]) == ("reoffer_after_timed_out", "unit-b")
        seen = {c["unit_id"]: c for c in first["candidates"]}
        for name, node in homes.items():
            expected_m = haversine_m(graph.lon[node], graph.lat[node], *scene_at)
            assert seen[f"unit-{name}"]["distance_m"] == pytest.approx(expected_m, abs=0.1)
            assert seen[f"unit-{name}"]["status"] == "available" and seen[f"unit-{name}"]["eligible"]
        assert [c["unit_id"] for c in first["candidates"]] == ["unit-a", "unit-b", "unit-c"]
        again = {c["unit_id"]: c for c in second["candidates"]}
        assert (
            again["unit-a"]["eligible"] is False
            and again["unit-a"]["reason"] == "already offered this incident"
        )
        assert again["unit-b"]["fix_age_s"] == 60.0  # B's last fix was taken when the incident came in
        assert second["excluded"]["already_offered"] == 1


async def read_sse_until(s: Stack, wanted: str, events: list[dict[str, Any]], response: Any) -> None:
    while not any(e["type"] == wanted for e in events):
        line = (await response.content.readline()).decode()
        if line.startswith("data: "):
            events.append(msgspec.json.decode(line[6:]))


async def test_a_breached_sla_escalates_notifies_and_is_recorded(
    store_url: str, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with running_stack(store_url, mosquitto, tmp_path) as s:
        w = s.http.world
        graph = shipped_graph()
        scene = graph.nearest_node(*INCIDENT_NEAR)
        near = node_at(graph, scene, 200)
        w.add_unit("unit-busy", status="busy", device="phone-busy")
        await s.fix("phone-busy", "unit-busy", (graph.lon[near], graph.lat[near]))
        console = await s.http.client.get(
            "/v1/stream", headers={"Authorization": f"Bearer {s.http.tokens['viewer']}"}
        )
        assert console.status == 200
        _, created, _ = await s.http.call(
            "POST",
            "/v1/incidents",
            status=201,
            json={
                "lon": graph.lon[scene],
                "lat": graph.lat[scene],
                "category": "robbery",
                "priority": "P1",
                "source": "call",
            },
        )
        base = f"/v1/incidents/{created['id']}"
        _, got, _ = await s.http.call("GET", base, "viewer", status=200)
        # Nobody suitable is available: the snapshots say why (the only unit near is busy).
        assert got["state"] == "new" and [x["slot"] for x in got["snapshots"]] == ["police", "auxiliary"]
        busy = got["snapshots"][0]["candidates"][0]
        assert busy["unit_id"] == "unit-busy" and busy["status"] == "busy" and busy["eligible"] is False

        await w.advance(240)  # P1 at the community grid: 240 s to have a unit on scene
        _, got, _ = await s.http.call("GET", base, "viewer", status=200)
        assert (got["state"], got["tier"]) == ("escalated", "police_grid")
        last = got["history"][-1]
        assert (last["event"], last["actor"], last["from_tier"], last["to_tier"]) == (
            "escalate",
            "system:sla",
            "community_grid",
            "police_grid",
        )
        assert "240 s" in last["reason"]
        events: list[dict[str, Any]] = []
        async with asyncio.timeout(20):
            await read_sse_until(s, "incident.escalated", events, console)
        escalated = next(e for e in events if e["type"] == "incident.escalated")
        assert escalated["incident_id"] == created["id"] and escalated["sla_breached"] is True
        assert escalated["tier"] == "police_grid" and escalated["from_tier"] == "community_grid"

        await w.advance(300)  # the police grid's 300 s pass too: up to the station
        _, got, _ = await s.http.call("GET", base, "viewer", status=200)
        assert got["tier"] == "station" and got["sla_due_at"] is not None
        console.close()


async def _until(check: Any) -> None:
    async with asyncio.timeout(20):
        while not check():  # noqa: ASYNC110 (the message comes through the broker)
            await asyncio.sleep(0.02)


async def test_each_tier_s_owners_hear_of_the_incident_on_the_real_sf_grids(
    store_url: str, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    listener = aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="events-listener")
    async with running_stack(store_url, mosquitto, tmp_path) as s, listener:
        await listener.subscribe("outpost/v1/events/incident.tier_notified", qos=1)
        w = s.http.world
        load_sf(w)
        w.add_unit("aux-1", "auxiliary", device="phone-aux")
        w.add_unit("cop-1", "police", device="phone-cop")
        w.add_unit("free-1", "police", device="phone-free")
        assign(w, "aux-1", COMMUNITY)
        assign(w, "cop-1", POLICE)
        await s.fix("phone-aux", "aux-1", point(0, 900, INCIDENT_NEAR))
        await s.fix("phone-cop", "cop-1", point(90, 700, INCIDENT_NEAR))
        await s.fix("phone-free", "free-1", point(180, 40, INCIDENT_NEAR))
        report = {
            "lon": INCIDENT_NEAR[0],
            "lat": INCIDENT_NEAR[1],
            "category": "vandalism",
            "priority": "P3",
            "source": "grid_report",
        }
        _, created, _ = await s.http.call("POST", "/v1/incidents", json=report, status=201)
        base = f"/v1/incidents/{created['id']}"
        _, got, _ = await s.http.call("GET", base, "viewer", status=200)
        assert (got["community_grid_id"], got["police_grid_id"]) == (COMMUNITY, POLICE)
        _, rec, _ = await s.http.call("GET", f"{base}/recommendations", "viewer", status=200)
        assert [(c["unit_id"], c["basis"]) for c in rec["slots"][0]["candidates"]] == [
            ("aux-1", "community_grid"),
            ("cop-1", "police_grid"),
            ("free-1", "nearest"),
        ]

        def notices(device_id: str) -> list[dict[str, Any]]:
            return [m for m in s.messages_to(device_id) if m["type"] == "incident_notice"]

        await _until(lambda: notices("phone-aux"))
        assert notices("phone-aux")[0]["tier"] == "community_grid" and not notices("phone-cop")
        await s.http.call("POST", f"{base}/escalate", json={"reason": "needs an officer"}, status=200)
        await _until(lambda: notices("phone-cop"))
        assert notices("phone-cop")[0]["tier"] == "police_grid"
        assert notices("phone-cop")[0]["why"] == "needs an officer"
        await s.http.call("POST", f"{base}/transfer", json={"to": "station"}, status=200)
        tiers: list[str] = []  # what any listener on the events topic heard, queued by the client meanwhile
        async with asyncio.timeout(20):
            async for message in listener.messages:
                tiers.append(msgspec.json.decode(bytes(message.payload))["tier"])  # type: ignore[arg-type]
                if len(tiers) == 3:
                    break
        assert tiers == ["community_grid", "police_grid", "station"]
        assert not notices("phone-free")
