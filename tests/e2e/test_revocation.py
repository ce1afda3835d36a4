"""Revocation bites at once in one process (issue 15, item 2): a device given new credentials, or disabled,
through the API of `outpost run` is refused by its ingest on the next request, not after the directory's
period (set to an hour here, so nothing but the API's word can explain the refusal)."""

from __future__ import annotations

import asyncio
import base64
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from store import access
from store.engine import open_engine
from tests.support.outpost_run import running_outpost


async def test_new_credentials_and_disabling_are_refused_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'outpost.db'}"
    async with running_outpost(url, tmp_path, OUTPOST_DEVICE_REFRESH_S="3600") as (running, _):
        engine = open_engine(url)
        token = access.create_token(engine, role="admin", name="rv", now=datetime.now(UTC))[1]
        engine.dispose()
        admin = {"Authorization": f"Bearer {token}"}
        base = running.http_url
        async with aiohttp.ClientSession(base) as http:

            async def credentials() -> str:
                async with http.post("/v1/devices/rv-1/credentials", headers=admin) as r:
                    assert r.status == 201
                    return str((await r.json())["secret"])

            async def send(secret: str) -> int:
                fix = {"id": "rv-1", "lat": "37.7749", "lon": "-122.4194", "timestamp": str(int(time.time()))}
                auth = {"Authorization": "Basic " + base64.b64encode(f"rv-1:{secret}".encode()).decode()}
                async with http.get("/ingest/osmand", params=fix, headers=auth) as r:
                    return r.status

            async with http.post("/v1/devices", json={"id": "rv-1", "kind": "phone"}, headers=admin) as r:
                assert r.status == 201
            old = await credentials()
            assert await _eventually(send, old, 200)  # the new device, once ingest has heard of it
            new = await credentials()
            assert await send(old) == 401  # the next request already: the old secret is gone
            assert await send(new) == 200
            async with http.patch("/v1/devices/rv-1", json={"enabled": False}, headers=admin) as r:
                assert r.status == 200
            assert await send(new) == 403


async def _eventually(send: object, secret: str, status: int) -> bool:
    """A guard for the first contact (the directory reloads on a miss), not a timing."""
    for _ in range(100):
        if await send(secret) == status:  # type: ignore[operator]
            return True
        await asyncio.sleep(0.1)
    return False
