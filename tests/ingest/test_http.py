"""HTTP ingestion (OsmAnd / Traccar Client, OwnTracks HTTP mode) against a real PostgreSQL: the status code
tells the device whether its fix is stored; device secrets are enforced; a database outage is answered
from the spool, or with 503 when nothing can take the fix."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY
from sqlalchemy import Engine

from ingest.devices import DeviceDirectory
from ingest.http import OPENAPI_PATHS, routes
from ingest.http.broker_login import LOGIN_PATH
from ingest.http.problems import REASON_FIELDS, rejected_fields
from ingest.pipeline import Pipeline
from ingest.settings import IngestSettings
from ingest.spool import Spool
from ingest.validate import REASONS, Validator
from schemas.fix import Fix, FixFlag
from store.engine import open_engine
from store.fixes import FixWriter, StoreUnavailable, count_fixes, count_rejected, fetch_fixes
from tests.ingest import ingest_harness as harness
from tests.ingest.ingest_harness import DEVICE_AUTH, register, wait_for
from tests.support.services import Mosquitto


class FlakyWriter(FixWriter):
    """The real writer, with a switch that makes the database 'unavailable' (fault injection only)."""

    down = False

    def write(self, fixes: Sequence[Fix]) -> int:
        if self.down:
            raise StoreUnavailable("injected outage")
        return super().write(fixes)


@contextlib.asynccontextmanager
async def serving(
    engine: Engine, tmp_path: Path, *, spool_max_bytes: int = 1 << 20, **overrides: object
) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], FlakyWriter]]:
    settings = replace(
        IngestSettings(
            batch_max_age_ms=20,
            device_miss_refresh_s=0.0,
            http_durable_timeout_s=1.0,
            spool_dir=str(tmp_path),
        ),
        **overrides,
    )
    writer = FlakyWriter(engine)
    pipeline = Pipeline(
        settings,
        writer=writer,
        directory=DeviceDirectory(
            engine,
            miss_refresh_s=settings.device_miss_refresh_s,
            register_unknown=settings.register_unknown_devices,
        ),
        validator=Validator(settings),
        spool=Spool(tmp_path / "spool", spool_max_bytes),
        on_accepted=lambda f: None,
    )
    await pipeline.directory.load_at_start()
    app = web.Application()
    app.add_routes(routes(pipeline))
    stop = asyncio.Event()
    running = asyncio.create_task(pipeline.run(stop))
    async with TestClient(TestServer(app)) as client:
        yield client, writer
    stop.set()
    await running


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_osmand_query_and_traccar_json_are_stored(pg_engine: Engine, tmp_path: Path) -> None:
    register(pg_engine, "phone-1")
    now = int(time.time())
    async with serving(pg_engine, tmp_path) as (client, _):
        resp = await client.get(
            "/ingest/osmand",
            params={
                "id": "phone-1",
                "lat": "37.7749",
                "lon": "-122.4194",
                "timestamp": str(now - 5),
                "speed": "10",
                "batt": "55",
            },
            auth=DEVICE_AUTH,
        )
        assert resp.status == 200, await resp.text()
        body = {
            "device_id": "phone-1",
            "location": {
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 2)),
                "mock": True,
                "coords": {
                    "latitude": 37.775,
                    "longitude": -122.42,
                    "accuracy": 8,
                    "speed": 3.5,
                    "heading": 90,
                },
                "battery": {"level": 0.5, "is_charging": False},
            },
        }
        resp = await client.post("/ingest/osmand", json=body, auth=DEVICE_AUTH)
        assert resp.status == 200, await resp.text()
    first, second = fetch_fixes(pg_engine, device_id="phone-1")
    assert first.speed_mps is not None and abs(first.speed_mps - 10 * 0.514444) < 1e-3  # knots
    assert second.flags & FixFlag.MOCK


async def test_owntracks_http_is_stored_and_answered_with_an_empty_array(
    pg_engine: Engine, tmp_path: Path
) -> None:
    register(pg_engine, "alice/phone")
    payload = {"_type": "location", "lat": 37.78, "lon": -122.41, "tst": int(time.time()) - 3, "acc": 10}
    async with serving(pg_engine, tmp_path) as (client, _):
        resp = await client.post(
            "/ingest/owntracks",
            json=payload,
            headers={"X-Limit-U": "alice", "X-Limit-D": "phone"},
            auth=DEVICE_AUTH,
        )
        assert resp.status == 200
        assert await resp.json() == []
        resp = await client.post(
            "/ingest/owntracks",
            json={"_type": "transition", "event": "leave"},
            headers={"X-Limit-U": "alice", "X-Limit-D": "phone"},
            auth=DEVICE_AUTH,
        )
        assert resp.status == 200
    assert count_fixes(pg_engine) == 1


async def test_rejections_carry_their_reasons_and_are_dead_lettered(
    pg_engine: Engine, tmp_path: Path
) -> None:
    register(pg_engine, "phone-1")
    async with serving(pg_engine, tmp_path) as (client, _):
        resp = await client.get(
            "/ingest/osmand", params={"id": "phone-1", "lat": "97.5", "lon": "-122.4"}, auth=DEVICE_AUTH
        )
        assert resp.status == 400
        assert (await resp.json())["reasons"] == ["lat_out_of_range"]
        resp = await client.get("/ingest/osmand", params={"id": "stranger", "lat": "37.5", "lon": "-122.4"})
        assert resp.status == 403
        assert (await resp.json())["reasons"] == ["unknown_device"]
        resp = await client.post(
            "/ingest/osmand",
            data=b'{"device_id": "phone-1", "location": ',
            headers={"Content-Type": "application/json"},
            auth=DEVICE_AUTH,
        )
        assert resp.status == 400
        await wait_for(lambda: count_rejected(pg_engine) == 3)
    assert count_fixes(pg_engine) == 0
    assert count_rejected(pg_engine, "unknown_device") == 1


async def test_a_device_with_credentials_must_present_its_secret(pg_engine: Engine, tmp_path: Path) -> None:
    register(pg_engine, "locked", secret="s3cret")
    fix = {"id": "locked", "lat": "37.7", "lon": "-122.4"}
    async with serving(pg_engine, tmp_path) as (client, _):
        assert (await client.get("/ingest/osmand", params=fix)).status == 401
        assert (
            await client.get("/ingest/osmand", params=fix, headers=basic("locked", "wrong"))
        ).status == 401
        ok = [
            await client.get(
                "/ingest/osmand",
                params={**fix, "timestamp": str(int(time.time()) - 30)},
                headers=basic("locked", "s3cret"),
            ),
            await client.get(
                "/ingest/osmand", params={**fix, "timestamp": str(int(time.time()) - 20), "key": "s3cret"}
            ),
            await client.get(
                "/ingest/osmand",
                params={**fix, "timestamp": str(int(time.time()) - 10)},
                headers={"Authorization": "Bearer s3cret"},
            ),
        ]
        assert [r.status for r in ok] == [200, 200, 200]
    assert count_fixes(pg_engine) == 3


async def test_database_down_answers_from_the_spool_then_drains(pg_engine: Engine, tmp_path: Path) -> None:
    register(pg_engine, "phone-1")
    async with serving(pg_engine, tmp_path) as (client, writer):
        writer.down = True
        resp = await client.get(
            "/ingest/osmand", params={"id": "phone-1", "lat": "37.7", "lon": "-122.4"}, auth=DEVICE_AUTH
        )
        assert resp.status == 200  # durable: in the spool
        assert count_fixes(pg_engine) == 0
        writer.down = False
        await wait_for(lambda: count_fixes(pg_engine) == 1, what="the spool drained")


async def test_database_down_and_spool_full_answers_503(pg_engine: Engine, tmp_path: Path) -> None:
    register(pg_engine, "phone-1")
    async with serving(pg_engine, tmp_path, spool_max_bytes=10) as (client, writer):
        writer.down = True
        resp = await client.get(
            "/ingest/osmand",
            params={"id": "phone-1", "lat": "37.7", "lon": "-122.4", "timestamp": str(int(time.time()) - 1)},
            auth=DEVICE_AUTH,
        )
        assert resp.status == 503
        assert resp.headers["Retry-After"]
        writer.down = False
        # The held batch is stored once the database is back; the device's retry is a duplicate.
        await wait_for(lambda: count_fixes(pg_engine) == 1)


def _bare_pipeline(tmp_path: Path) -> Pipeline:
    """A pipeline that is never run: enough to build the route table."""
    engine = open_engine(f"sqlite:///{tmp_path / 'routes.db'}")
    return Pipeline(
        IngestSettings(),
        writer=FixWriter(engine),
        directory=DeviceDirectory(engine),
        validator=Validator(IngestSettings()),
        spool=None,
        on_accepted=lambda f: None,
    )


def test_openapi_describes_every_route(tmp_path: Path) -> None:
    assert set(OPENAPI_PATHS) == {
        "/ingest/osmand",
        "/ingest/owntracks",
        *(
            f"/ingest/v1/devices/{device}/{kind}"
            for kind in ("reply", "alarm", "status", "checkin", "answer")
            for device in ("{device_id}", "{user}/{device}")  # the latter: an OwnTracks id
        ),
    }
    assert set(OPENAPI_PATHS["/ingest/osmand"]) == {"get", "post"}
    # Every route of the table is documented, but the broker's own (EMQX's authenticator asks it, not a
    # device: deploy/README.md describes it).
    mounted = {route.path for route in routes(_bare_pipeline(tmp_path))}
    assert mounted == set(OPENAPI_PATHS) | {LOGIN_PATH}
    for item in OPENAPI_PATHS.values():
        for op in item.values():
            assert {"400", "401", "503"} <= set(op["responses"])
            assert {"200", "202"} & set(op["responses"])
    json.dumps(OPENAPI_PATHS)


# ------------------------------------------------------------------------------ the answers' shape (issue 15)


async def test_rejected_fixes_answer_in_the_apis_problem_shape_naming_the_field(
    pg_engine: Engine, tmp_path: Path
) -> None:
    register(pg_engine, "phone-1")
    register(pg_engine, "locked", secret="s3cret")
    async with serving(pg_engine, tmp_path) as (client, _):
        resp = await client.get(
            "/ingest/osmand", params={"id": "phone-1", "lat": "97.5", "lon": "-122.4"}, auth=DEVICE_AUTH
        )
        assert resp.content_type == "application/problem+json"
        assert await resp.json() == {
            "type": "https://outpost.invalid/problems/invalid-parameter",
            "title": "Bad Request",
            "status": 400,
            "detail": "lat: lat_out_of_range: must be between -90 and 90",
            "instance": "/ingest/osmand",
            "invalid_params": [{"name": "lat", "reason": "lat_out_of_range: must be between -90 and 90"}],
            "reasons": ["lat_out_of_range"],
        }
        old = await client.get(
            "/ingest/osmand",
            params={"id": "phone-1", "lat": "37.5", "lon": "-122.4", "timestamp": "946684800"},
            auth=DEVICE_AUTH,
        )
        assert [p["name"] for p in (await old.json())["invalid_params"]] == ["timestamp"]  # OsmAnd's word
        missing = await client.get(
            "/ingest/osmand", params={"id": "phone-1", "lon": "-122.4"}, auth=DEVICE_AUTH
        )
        body = await missing.json()
        assert missing.status == 400 and body["invalid_params"][0]["name"] == "lat", body
        stranger = await client.get(
            "/ingest/osmand", params={"id": "stranger", "lat": "37.5", "lon": "-122.4"}
        )
        body = await stranger.json()
        assert (stranger.status, body["type"], body["invalid_params"][0]["name"]) == (
            403,
            "https://outpost.invalid/problems/forbidden",
            "id",
        )
        locked = await client.get("/ingest/osmand", params={"id": "locked", "lat": "37.5", "lon": "-122.4"})
        body = await locked.json()
        assert (locked.status, body["title"], body["instance"]) == (401, "Unauthorized", "/ingest/osmand")
        owntracks = await client.post(
            "/ingest/owntracks",
            json={"_type": "location", "lat": 37.7, "lon": -122.4, "tst": int(time.time())},
            headers={"X-Limit-U": "alice", "X-Limit-D": "phone"},
            auth=DEVICE_AUTH,
        )
        body = await owntracks.json()
        assert owntracks.status == 403 and body["invalid_params"][0]["name"] == "X-Limit-U/X-Limit-D", body


def test_a_time_in_seconds_where_milliseconds_are_expected_is_named_with_its_hint() -> None:
    (entry,) = rejected_fields(["too_old", "ts_in_seconds"], [], {})[1:]
    assert entry["name"] == "ts" and "epoch seconds where epoch milliseconds are expected" in entry["reason"]
    assert set(REASON_FIELDS) <= set(REASONS)  # the table names reasons that exist


async def test_an_mqtt_fix_in_epoch_seconds_is_dead_lettered_with_the_hint(
    mosquitto: Mosquitto, pg_engine: Engine, tmp_path: Path
) -> None:
    register(pg_engine, "cam-1")
    async with harness.running_ingest(harness.ingest_settings(mosquitto.url, tmp_path), pg_engine):
        seconds = int(time.time()) - 5  # the device meant epoch milliseconds
        for seq, ts_ms in ((1, seconds), (2, 946684800000)):
            await harness.mosquitto_pub(
                mosquitto.port, "outpost/v1/devices/cam-1/fix", harness.own_fix(seq, ts_ms=ts_ms)
            )
        await wait_for(lambda: count_rejected(pg_engine) == 2, what="two dead letters")
    assert count_rejected(pg_engine, "ts_in_seconds") == 1  # the plain old fix gets too_old alone
    assert count_rejected(pg_engine, "too_old") == 2


# ------------------------------------------------------------------------------ devices without credentials


def rejected_metric(reason: str) -> float:
    return REGISTRY.get_sample_value("outpost_ingest_rejected_total", {"reason": reason}) or 0.0


async def test_a_device_without_credentials_is_refused_naming_the_fix_and_dead_lettered(
    pg_engine: Engine, tmp_path: Path
) -> None:
    """Knowing an id is not enough: with no credentials issued, a fix is refused (403, `no_credentials`)
    whatever secret comes with it, dead-lettered and counted."""
    register(pg_engine, "cam-7", secret=None)
    before = rejected_metric("no_credentials")
    fix = {"id": "cam-7", "lat": "37.7", "lon": "-122.4", "timestamp": str(int(time.time()) - 1)}
    async with serving(pg_engine, tmp_path) as (client, _):
        bare = await client.get("/ingest/osmand", params=fix)
        guessed = await client.get("/ingest/osmand", params=fix, headers=basic("cam-7", "guess"))
        bodies = [(r.status, await r.json()) for r in (bare, guessed)]
        await wait_for(lambda: count_rejected(pg_engine, "no_credentials") == 2, what="two dead letters")
    for status, body in bodies:
        assert (status, body["reasons"], body["type"]) == (
            403,
            ["no_credentials"],
            "https://outpost.invalid/problems/forbidden",
        )
        assert "issue credentials with POST /v1/devices/{id}/credentials" in body["detail"], body
        assert body["invalid_params"][0]["name"] == "id"
    assert rejected_metric("no_credentials") - before == 2
    assert count_fixes(pg_engine) == 0


async def test_open_mode_accepts_a_device_without_credentials(pg_engine: Engine, tmp_path: Path) -> None:
    register(pg_engine, "cam-7", secret=None)
    fix = {"id": "cam-7", "lat": "37.7", "lon": "-122.4", "timestamp": str(int(time.time()) - 1)}
    async with serving(pg_engine, tmp_path, register_unknown_devices=True) as (client, _):
        resp = await client.get("/ingest/osmand", params=fix)
        assert resp.status == 200, await resp.text()
    assert count_fixes(pg_engine) == 1 and count_rejected(pg_engine) == 0
