"""The authorization matrix, generated from the route table (issue 15): every documented operation of a
running Outpost, called with no token, a bad token, a device's credential, and each role's token, answers
exactly as the role it declares says. A new route cannot ship open: it is in the document (a test checks
routes and document agree both ways), so it is in this matrix.

Ids in paths name nothing and bodies are empty: an allowed caller gets a 4xx about the request (400, 404,
409, 422) or a success, never 401/403 and never a 5xx; a refused one gets 401 or 403 before anything runs.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from store import access
from store.engine import open_engine
from tests.support.outpost_run import running_outpost

RANK = {"viewer": 0, "dispatcher": 1, "admin": 2}
_PARAM = re.compile(r"\{(\w+)\}")


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(method, path with its ids filled in, the least role, whether it answers a stream)."""
    found = []
    for path, ops in doc["paths"].items():
        if path.startswith("/ingest/"):
            continue  # the device gateway's routes: device credentials, not roles (tests/ingest)
        for method, op in ops.items():
            media = [m for r in op["responses"].values() for m in r.get("content", {})]
            filled = _PARAM.sub(lambda m: "zz-none" if m.group(1) != "n" else "1", path)
            found.append((method.upper(), filled, op["x-outpost-role"], "text/event-stream" in media))
    return found


async def _status(session: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str]) -> int:
    body = {} if method in ("POST", "PUT", "PATCH") else None
    async with session.request(method, url, json=body, headers=headers) as response:
        return response.status  # leaving the block closes a stream without reading it


async def test_every_route_answers_each_caller_as_its_declared_role(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'outpost.db'}"
    async with running_outpost(url, tmp_path) as (running, _):
        engine = open_engine(url)
        now = datetime.now(UTC)
        tokens = {r: access.create_token(engine, role=r, name=f"m-{r}", now=now)[1] for r in RANK}
        engine.dispose()
        admin = {"Authorization": f"Bearer {tokens['admin']}"}
        base = running.http_url
        async with aiohttp.ClientSession() as session:
            async with session.get(base + "/openapi.json") as response:
                doc = await response.json()
            await session.post(base + "/v1/devices", json={"id": "m-dev", "kind": "phone"}, headers=admin)
            async with session.post(base + "/v1/devices/m-dev/credentials", headers=admin) as response:
                secret = (await response.json())["secret"]
            device = base64.b64encode(f"m-dev:{secret}".encode()).decode()
            callers: dict[str, dict[str, str]] = {
                "no token": {},
                "bad token": {"Authorization": "Bearer not-a-token"},
                "device credential": {"Authorization": f"Basic {device}"},
                **{role: {"Authorization": f"Bearer {t}"} for role, t in tokens.items()},
            }
            operations = _operations(doc)
            assert len(operations) > 40  # the whole table, plugins included
            wrong = []
            for method, path, least, _stream in operations:
                for caller, headers in callers.items():
                    status = await _status(session, method, base + path, headers)
                    if least == "public":
                        expected_ok = True
                    else:
                        expected_ok = caller in RANK and RANK[caller] >= RANK[least]
                    if status >= 500:
                        wrong.append((method, path, caller, status, "a server error"))
                    elif expected_ok and status in (401, 403):
                        wrong.append((method, path, caller, status, f"refused, but {least} may"))
                    elif not expected_ok:
                        want = 403 if caller in RANK else 401
                        if status != want:
                            wrong.append((method, path, caller, status, f"needs {least}: wanted {want}"))
    assert not wrong, "\n".join(map(str, wrong))
