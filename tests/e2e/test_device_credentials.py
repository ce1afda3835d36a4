"""A device is created with its credentials (issue 15, item 1): through `outpost run`, the secret that
`POST /v1/devices` answers opens the device's endpoints at once, the old default (no secret) opens nothing,
a device created with `"credentials": false` is refused until its credentials are issued, and ids reserved
for the broker's service accounts cannot be registered."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from store import access
from store.engine import open_engine
from tests.support.outpost_run import running_outpost

ALARM = "/ingest/v1/devices/{}/alarm"


def fix_of(device_id: str) -> dict[str, str]:
    return {"id": device_id, "lat": "37.7749", "lon": "-122.4194", "timestamp": str(int(time.time()))}


async def test_creation_issues_a_secret_that_works_and_no_secret_opens_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'outpost.db'}"
    async with running_outpost(url, tmp_path) as (running, _):
        engine = open_engine(url)
        token = access.create_token(engine, role="admin", name="creds", now=datetime.now(UTC))[1]
        engine.dispose()
        admin = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(running.http_url) as http:

            async def send(device_id: str, key: str | None = None) -> tuple[int, Mapping[str, object]]:
                params = fix_of(device_id) | ({"key": key} if key else {})
                async with http.get("/ingest/osmand", params=params) as r:
                    return r.status, await r.json() if r.content_type.endswith("json") else {}

            async with http.post("/v1/devices", json={"id": "cr-1", "kind": "phone"}, headers=admin) as r:
                assert r.status == 201 and r.headers["Cache-Control"] == "no-store"
                made = await r.json()
            assert made["has_credentials"] is True
            secret = made["credentials"]["secret"]
            assert (await send("cr-1", secret))[0] == 200  # at once: creation told ingest
            assert (await send("cr-1"))[0] == 401  # the old default, an id alone, no longer opens it
            assert (await send("cr-1", "guess"))[0] == 401

            bare = {"id": "cr-2", "kind": "phone", "credentials": False}
            async with http.post("/v1/devices", json=bare, headers=admin) as r:
                assert r.status == 201
                made = await r.json()
            assert (made["has_credentials"], made["credentials"]) == (False, None)
            status, body = await send("cr-2")
            assert (status, body["reasons"]) == (403, ["no_credentials"]), body
            async with http.post(ALARM.format("cr-2"), json={}) as r:
                body = await r.json()
                assert (r.status, body["reasons"]) == (403, ["no_credentials"]), body
                assert "POST /v1/devices/cr-2/credentials" in str(body["detail"])
            async with http.post("/v1/devices/cr-2/credentials", headers=admin) as r:
                issued = (await r.json())["secret"]
            assert (await send("cr-2", issued))[0] == 200


@pytest.mark.parametrize("device_id", ["outpost", "OUTPOST-admin", "outpost-ingest-2"])
async def test_ids_reserved_for_service_accounts_are_refused_naming_the_rule(
    tmp_path: Path, device_id: str
) -> None:
    url = f"sqlite:///{tmp_path / 'outpost.db'}"
    async with running_outpost(url, tmp_path) as (running, _):
        engine = open_engine(url)
        token = access.create_token(engine, role="admin", name="creds", now=datetime.now(UTC))[1]
        engine.dispose()
        admin = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(running.http_url) as http:
            body = {"id": device_id, "kind": "phone"}
            async with http.post("/v1/devices", json=body, headers=admin) as r:
                assert (r.status, r.content_type) == (422, "application/problem+json")
                problem = await r.json()
            async with http.get(f"/v1/devices/{device_id}", headers=admin) as r:
                assert r.status == 404  # nothing was stored
    assert problem["invalid_params"][0]["name"] == "body.id"
    assert "reserved for the broker's service accounts" in problem["detail"], problem
    assert "outpost-" in problem["detail"]
