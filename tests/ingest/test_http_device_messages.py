"""Devices answer offers and raise alarms over HTTP (`/ingest/v1/devices/{id}/reply` and `/alarm`): the same
device authentication as their fixes, a size limit, a shape check, and the same `on_device_message` handler
as MQTT, whose outcome the device is told. Against a real embedded store; the last test goes through the
real composition root (`outpost.root.serve`) and a real incident."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import Engine

from ingest.devices import DeviceDirectory
from ingest.http import routes
from ingest.pipeline import Pipeline
from ingest.ports import OnDeviceMessage
from ingest.settings import IngestSettings
from ingest.validate import Validator
from store import access
from store.engine import open_engine
from store.fixes import FixWriter, count_rejected
from tests.ingest.ingest_harness import DEVICE_AUTH, register, wait_for
from tests.support.outpost_run import running_outpost

REPLY = "/ingest/v1/devices/{}/reply"
ALARM = "/ingest/v1/devices/{}/alarm"
Client = TestClient[web.Request, web.Application]


@dataclass(frozen=True)
class Outcome:
    ok: bool
    detail: str


@dataclass
class Dispatcher:
    """Stands in for dispatch behind the handler seam: records what arrives; only offer "o-1" is open.
    While `hold` is clear, answers wait (a slow dispatcher)."""

    got: list[tuple[str, str, Any]] = field(default_factory=list)
    hold: asyncio.Event = field(default_factory=asyncio.Event)
    done: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.hold.set()

    def __call__(self, device_id: str, kind: str, payload: bytes) -> asyncio.Task[Outcome]:
        self.got.append((device_id, kind, json.loads(payload)))
        return asyncio.create_task(self._answer(kind, json.loads(payload)))

    async def _answer(self, kind: str, body: dict[str, Any]) -> Outcome:
        await self.hold.wait()
        if kind == "reply":
            outcome = Outcome(body["offer_id"] == "o-1", f"{body['answer']}: {body['offer_id']}")
        else:
            outcome = Outcome(True, "incident raised")
        self.done.append(outcome)
        return outcome


@contextlib.asynccontextmanager
async def serving(
    engine: Engine, tmp_path: Path, handler: OnDeviceMessage | None, **overrides: Any
) -> AsyncIterator[Client]:
    settings = replace(
        IngestSettings(
            batch_max_age_ms=20,
            device_miss_refresh_s=0.0,
            http_durable_timeout_s=10.0,
            max_payload_bytes=1024,
            spool_dir=str(tmp_path),
        ),
        **overrides,
    )
    directory = DeviceDirectory(
        engine, miss_refresh_s=0.0, register_unknown=settings.register_unknown_devices
    )
    pipeline = Pipeline(
        settings,
        writer=FixWriter(engine),
        directory=directory,
        validator=Validator(settings),
        spool=None,
        on_accepted=lambda f: None,
        on_device_message=handler,
    )
    await directory.load_at_start()
    app = web.Application()
    app.add_routes(routes(pipeline))
    stop = asyncio.Event()
    flushing = asyncio.create_task(pipeline.run(stop))  # dead letters are flushed like fixes
    try:
        async with TestClient(TestServer(app)) as client:
            yield client
    finally:
        stop.set()
        await flushing


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    engine = open_engine(sqlite_url, pool_size=1)
    yield engine
    engine.dispose()


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def answer(resp: aiohttp.ClientResponse) -> tuple[int, dict[str, Any]]:
    return resp.status, await resp.json(content_type=None)


async def test_replies_and_alarms_reach_the_handler_and_the_device_hears_the_outcome(
    engine: Engine, tmp_path: Path
) -> None:
    register(engine, "phone-1", secret="s3cret")
    dispatcher = Dispatcher()
    async with serving(engine, tmp_path, dispatcher) as client:
        taken = await client.post(
            REPLY.format("phone-1"),
            json={"offer_id": "o-1", "answer": "accept"},
            headers=basic("x", "s3cret"),
        )
        closed = await client.post(
            REPLY.format("phone-1"), json={"offer_id": "o-2", "answer": "decline"}, params={"key": "s3cret"}
        )
        sos = await client.post(
            ALARM.format("phone-1"),
            json={"lon": -122.42, "lat": 37.77, "description": "shots fired"},
            headers={"Authorization": "Bearer s3cret"},
        )
        bare = await client.post(ALARM.format("phone-1"), params={"key": "s3cret"})  # the button, no body
        assert await answer(taken) == (202, {"outcome": "taken", "detail": "accept: o-1"})
        assert await answer(closed) == (202, {"outcome": "refused", "detail": "decline: o-2"})
        assert await answer(sos) == (202, {"outcome": "taken", "detail": "incident raised"})
        assert (await answer(bare))[0] == 202
    assert dispatcher.got == [
        ("phone-1", "reply", {"offer_id": "o-1", "answer": "accept"}),
        ("phone-1", "reply", {"offer_id": "o-2", "answer": "decline"}),
        ("phone-1", "alarm", {"lon": -122.42, "lat": 37.77, "description": "shots fired"}),
        ("phone-1", "alarm", {}),
    ]


async def test_wrong_secret_another_devices_id_unknown_and_disabled_devices_are_refused(
    engine: Engine, tmp_path: Path
) -> None:
    register(engine, "phone-1", secret="one")
    register(engine, "phone-2", secret="two")
    register(engine, "retired", enabled=False, secret=None)
    dispatcher = Dispatcher()
    reply = {"offer_id": "o-1", "answer": "accept"}
    async with serving(engine, tmp_path, dispatcher) as client:
        missing = await client.post(REPLY.format("phone-1"), json=reply)
        wrong = await client.post(REPLY.format("phone-1"), json=reply, headers=basic("phone-1", "two"))
        borrowed = await client.post(REPLY.format("phone-2"), json=reply, headers=basic("phone-1", "one"))
        alarm = await client.post(ALARM.format("phone-2"), json={}, params={"key": "one"})
        stranger = await client.post(REPLY.format("stranger"), json=reply)
        retired = await client.post(ALARM.format("retired"), json={})
        assert [r.status for r in (missing, wrong, borrowed, alarm)] == [401, 401, 401, 401]
        assert missing.headers["WWW-Authenticate"].startswith("Basic")
        assert await answer(stranger) == (
            403,
            {
                "type": "https://outpost.invalid/problems/forbidden",
                "title": "Forbidden",
                "status": 403,
                "detail": "device refused: unknown_device",
                "instance": "/ingest/v1/devices/stranger/reply",
                "invalid_params": [
                    {"name": "device_id", "reason": "unknown_device: device stranger is not registered"}
                ],
                "reasons": ["unknown_device"],
            },
        )
        _, unauthorized = await answer(missing)
        assert (unauthorized["type"], unauthorized["instance"]) == (
            "https://outpost.invalid/problems/unauthorized",
            "/ingest/v1/devices/phone-1/reply",
        )
        assert unauthorized["invalid_params"][0]["name"] == "Authorization"
        assert (await answer(retired))[1]["reasons"] == ["disabled_device"]
    assert dispatcher.got == []


async def test_status_checkin_and_answer_have_http_twins_whose_refusals_are_dead_lettered(
    engine: Engine, tmp_path: Path
) -> None:
    register(engine, "phone-1", secret="one")
    register(engine, "retired", enabled=False, secret=None)
    dispatcher = Dispatcher()
    key = {"key": "one"}
    path = "/ingest/v1/devices/{}/{}"
    async with serving(engine, tmp_path, dispatcher) as client:
        taken = [
            await client.post(path.format("phone-1", kind), json=body, params=key)
            for kind, body in (
                ("status", {"status": "on_duty"}),
                ("checkin", {"checkin_id": "c-1", "fix": {"ts": 1717088400000, "lat": 37.7, "lon": -122.4}}),
                ("answer", {"rollcall_id": "r-1"}),
            )
        ]
        assert [r.status for r in taken] == [202, 202, 202]
        refused = [
            await client.post(path.format("phone-1", "status"), json={"status": "asleep"}, params=key),
            await client.post(path.format("phone-1", "checkin"), json={"fix": {}}, params=key),
            await client.post(path.format("stranger", "answer"), json={"rollcall_id": "r-1"}),
            await client.post(path.format("retired", "status"), json={"status": "on_duty"}),
        ]
        bodies = [await answer(r) for r in refused]
        assert [(status, body["reasons"]) for status, body in bodies] == [
            (400, ["malformed_message"]),
            (400, ["malformed_message"]),
            (403, ["unknown_device"]),
            (403, ["disabled_device"]),
        ]
        await wait_for(lambda: count_rejected(engine) == 4, what="four dead letters")
    assert [kind for _, kind, _ in dispatcher.got] == ["status", "checkin", "answer"]
    assert count_rejected(engine, "malformed_message") == 2


async def test_a_device_registered_after_start_is_held_to_its_secret(engine: Engine, tmp_path: Path) -> None:
    dispatcher = Dispatcher()
    async with serving(engine, tmp_path, dispatcher) as client:
        register(engine, "late", secret="s3cret")  # not in the directory yet: a miss reloads it first
        resp = await client.post(ALARM.format("late"), json={})
        assert resp.status == 401
        resp = await client.post(ALARM.format("late"), json={}, params={"key": "s3cret"})
        assert resp.status == 202
    assert dispatcher.got == [("late", "alarm", {})]


async def test_unknown_devices_may_send_when_unknown_devices_are_registered(
    engine: Engine, tmp_path: Path
) -> None:
    dispatcher = Dispatcher()
    async with serving(engine, tmp_path, dispatcher, register_unknown_devices=True) as client:
        resp = await client.post(ALARM.format("new-phone"), json={"lon": 2.35, "lat": 48.85})
        assert resp.status == 202
    assert dispatcher.got == [("new-phone", "alarm", {"lon": 2.35, "lat": 48.85})]


async def test_an_unknown_id_no_topic_can_carry_is_refused_even_in_open_mode(
    engine: Engine, tmp_path: Path
) -> None:
    # Found by schemathesis: an OwnTracks answer from `a/b#` reached the field desk, whose answer to the
    # device could not be published (no MQTT topic holds a wildcard), and the request answered 500.
    dispatcher = Dispatcher()
    async with serving(engine, tmp_path, dispatcher, register_unknown_devices=True) as client:
        for path in ("/ingest/v1/devices/a/b%23/answer", "/ingest/v1/devices/cam%2B1/alarm"):
            status, body = await answer(await client.post(path, json={"rollcall_id": "r-1"}))
            assert status == 400, path
            assert body["reasons"] == ["invalid_device_id"], body
            assert body["invalid_params"][0]["name"] == "device_id", body
        await wait_for(lambda: count_rejected(engine, "invalid_device_id") == 2, what="two dead letters")
    assert dispatcher.got == []


async def test_oversize_and_malformed_bodies_are_refused_and_not_forwarded(
    engine: Engine, tmp_path: Path
) -> None:
    register(engine, "phone-1")
    dispatcher = Dispatcher()

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: the limit is enforced while reading
        yield b'{"description": "'
        yield b"x" * 2000
        yield b'"}'

    async with serving(engine, tmp_path, dispatcher) as client:
        declared = await client.post(
            ALARM.format("phone-1"), json={"description": "x" * 2000}, auth=DEVICE_AUTH
        )
        streamed = await client.post(ALARM.format("phone-1"), data=chunked(), auth=DEVICE_AUTH)
        assert [declared.status, streamed.status] == [413, 413]
        for path, body in (
            (REPLY, b'{"offer_id": "o-1", "answer": "maybe"}'),
            (REPLY, b'{"answer": "accept"}'),
            (REPLY, b""),
            (REPLY, b"not json"),
            (ALARM, b'{"lon": 200, "lat": 37.7}'),
            (ALARM, b'{"lon": "west"}'),
        ):
            resp = await client.post(path.format("phone-1"), data=body, auth=DEVICE_AUTH)
            status, problem_body = await answer(resp)
            assert status == 400, body
            assert problem_body["detail"], body
            assert problem_body["title"] == "Bad Request" and problem_body["instance"].startswith("/ingest/")
            assert problem_body["invalid_params"][0]["reason"].startswith("malformed_message: "), body
        named = await answer(
            await client.post(ALARM.format("phone-1"), data=b'{"lon": "west"}', auth=DEVICE_AUTH)
        )
        assert named[1]["invalid_params"][0]["name"] == "lon"
    assert dispatcher.got == []


async def test_fire_and_forget_handlers_slow_dispatchers_and_no_dispatcher(
    engine: Engine, tmp_path: Path
) -> None:
    register(engine, "phone-1")
    reply = {"offer_id": "o-1", "answer": "accept"}
    got: list[str] = []
    async with serving(engine, tmp_path, lambda d, k, p: got.append(k)) as client:
        status, body = await answer(await client.post(REPLY.format("phone-1"), json=reply, auth=DEVICE_AUTH))
        assert (status, body["outcome"]) == (202, "forwarded")
    assert got == ["reply"]

    slow = Dispatcher()
    slow.hold.clear()
    async with serving(engine, tmp_path, slow, http_durable_timeout_s=0.05) as client:
        status, body = await answer(await client.post(REPLY.format("phone-1"), json=reply, auth=DEVICE_AUTH))
        assert (status, body["outcome"]) == (202, "forwarded")
        slow.hold.set()  # the work goes on after the device had its answer
        await wait_for(lambda: bool(slow.done), what="the slow answer")
    assert slow.done == [Outcome(True, "accept: o-1")]

    async with serving(engine, tmp_path, None) as client:
        assert (await client.post(REPLY.format("phone-1"), json=reply, auth=DEVICE_AUTH)).status == 503


async def test_an_owntracks_id_is_taken_as_two_segments_or_with_its_slash_escaped(
    engine: Engine, tmp_path: Path
) -> None:
    register(engine, "alice/phone", secret="s3cret")
    dispatcher = Dispatcher()
    reply = {"offer_id": "o-1", "answer": "accept"}
    async with serving(engine, tmp_path, dispatcher) as client:
        for path in ("/ingest/v1/devices/alice/phone/reply", "/ingest/v1/devices/alice%2Fphone/reply"):
            resp = await client.post(path, json=reply, headers=basic("alice", "s3cret"))
            assert await answer(resp) == (202, {"outcome": "taken", "detail": "accept: o-1"}), path
        status, body = await answer(await client.post("/ingest/v1/devices/alice/phone/reply", json=reply))
        assert (status, body["instance"]) == (401, "/ingest/v1/devices/alice/phone/reply")
    assert [(device, kind) for device, kind, _ in dispatcher.got] == [("alice/phone", "reply")] * 2


# ------------------------------------------------------------------------------------------ end to end
@pytest.mark.slow
async def test_a_unit_accepts_its_offer_over_http_through_the_composition_root(
    sqlite_url: str, tmp_path: Path
) -> None:
    engine = open_engine(sqlite_url, pool_size=1)
    try:
        register(engine, "cam-1", unit_id="unit-1", secret="s3cret")
        _, token = access.create_token(engine, role="dispatcher", name="e2e", now=datetime.now(UTC))
    finally:
        engine.dispose()
    async with (
        running_outpost(sqlite_url, tmp_path) as (base, _),
        aiohttp.ClientSession(base_url=base.http_url) as http,
    ):
        await play_offer_accepted_over_http(http, str(token))


async def play_offer_accepted_over_http(http: aiohttp.ClientSession, token: str) -> None:
    dispatcher = {"Authorization": f"Bearer {token}"}
    incident = {"lon": -122.4194, "lat": 37.7793, "category": "theft", "priority": "P3", "source": "call"}
    async with http.post("/v1/incidents", json=incident, headers=dispatcher) as resp:
        assert resp.status == 201, await resp.text()
        incident_id = (await resp.json())["id"]
    async with http.post(
        f"/v1/incidents/{incident_id}/offers", json={"unit_id": "unit-1"}, headers=dispatcher
    ) as resp:
        assert resp.status == 201, await resp.text()
        offer_id = (await resp.json())["id"]
    reply = {"offer_id": offer_id, "answer": "accept"}
    async with http.post(REPLY.format("cam-1"), json=reply) as resp:
        assert resp.status == 401  # the device's secret is required, as for its fixes
    async with http.post(REPLY.format("cam-1"), json=reply, headers=basic("cam-1", "s3cret")) as resp:
        assert (resp.status, (await resp.json())["outcome"]) == (202, "taken"), await resp.text()
    async with http.post(REPLY.format("cam-1"), json=reply, headers=basic("cam-1", "s3cret")) as resp:
        assert (await resp.json())["outcome"] == "refused"  # answered already: not pending any more
    async with http.get(f"/v1/incidents/{incident_id}", headers=dispatcher) as resp:
        seen = await resp.json()
    assert seen["state"] == "dispatched"
    assert [(o["id"], o["unit_id"], o["state"]) for o in seen["offers"]] == [(offer_id, "unit-1", "accepted")]
    async with http.post(ALARM.format("cam-1"), json={}, params={"key": "s3cret"}) as resp:
        assert (await resp.json())["outcome"] == "refused"  # no position sent, none known for the unit
    sos = {"lon": -122.41, "lat": 37.78, "description": "officer down"}
    async with http.post(ALARM.format("cam-1"), json=sos, params={"key": "s3cret"}) as resp:
        body = await resp.json()
    assert body["outcome"] == "taken", body
    async with http.get("/v1/incidents", headers=dispatcher) as resp:
        listed = (await resp.json())["incidents"]
    assert {(i["priority"], i["source"]) for i in listed} == {("P3", "call"), ("P1", "device_alarm")}


async def test_replies_and_alarms_of_a_device_without_credentials_are_refused_and_dead_lettered(
    engine: Engine, tmp_path: Path
) -> None:
    """The attack of issue 15: an SOS in the name of `cam-7`, whose credentials were never issued. Refused
    (403 naming the fix), dead-lettered, never handed to dispatch; in open mode it goes through."""
    register(engine, "cam-7", secret=None)
    dispatcher = Dispatcher()
    reply = {"offer_id": "o-1", "answer": "accept"}
    async with serving(engine, tmp_path, dispatcher) as client:
        refused = [
            await client.post(ALARM.format("cam-7"), json={"lon": -122.4, "lat": 37.7}),
            await client.post(ALARM.format("cam-7")),  # the bare button
            await client.post(REPLY.format("cam-7"), json=reply, headers=basic("cam-7", "guess")),
        ]
        bodies = [await answer(r) for r in refused]
        await wait_for(lambda: count_rejected(engine, "no_credentials") == 3, what="three dead letters")
    for status, body in bodies:
        assert (status, body["reasons"]) == (403, ["no_credentials"]), body
        assert "issue credentials with POST /v1/devices/cam-7/credentials" in body["detail"], body
    assert dispatcher.got == []

    async with serving(engine, tmp_path, dispatcher, register_unknown_devices=True) as client:
        resp = await client.post(ALARM.format("cam-7"), json={"lon": -122.4, "lat": 37.7})
        assert resp.status == 202
    assert dispatcher.got == [("cam-7", "alarm", {"lon": -122.4, "lat": 37.7})]
