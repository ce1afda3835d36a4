"""Tokens and roles on every endpoint, the public exceptions, device credentials, `outpost token create`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from dispatch.openapi import DocumentedRoutes
from outpost import cli
from schemas.credentials import verify_secret
from store import access, registry
from store.engine import open_engine
from tests.dispatch.conftest import LiveApi, running_api


async def test_no_token_is_401_and_a_bad_token_too(pg_api: LiveApi) -> None:
    response = await pg_api.call("GET", "/v1/units", role=None)
    assert response.status == 401
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = await response.json(content_type=None)
    assert body["type"].endswith("/unauthorized") and body["instance"] == "/v1/units"
    forged = await pg_api.client.get("/v1/units", headers={"Authorization": "Bearer not-a-token"})
    assert forged.status == 401
    basic = await pg_api.client.get("/v1/units", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status == 401


async def test_healthz_and_the_openapi_document_are_open_and_everything_else_is_not(pg_api: LiveApi) -> None:
    assert (await pg_api.json("GET", "/healthz", role=None))["status"] == "ok"
    assert (await pg_api.json("GET", "/openapi.json", role=None))["openapi"].startswith("3.1")
    for path in (
        "/metrics",
        "/v1/units",
        "/v1/devices",
        "/v1/units/nearest?lon=0&lat=0",
        "/v1/tokens",
        "/v1/audit",
        "/v1/stream",
    ):
        assert (await pg_api.call("GET", path, role=None)).status == 401, path


@pytest.mark.parametrize(
    ("method", "path", "body", "least"),
    [
        ("POST", "/v1/units", {"id": "n1", "name": "N", "kind": "police"}, "admin"),
        ("PATCH", "/v1/units/u1", {"name": "x"}, "admin"),
        ("DELETE", "/v1/units/u1", None, "admin"),
        ("POST", "/v1/devices", {"id": "dn", "kind": "phone"}, "admin"),
        ("POST", "/v1/devices/d1/credentials", None, "admin"),
        ("POST", "/v1/tokens", {"role": "viewer", "name": "x"}, "admin"),
        ("GET", "/v1/audit", None, "admin"),
        ("POST", "/v1/units/u1/status", {"status": "available"}, "dispatcher"),
        ("POST", "/v1/units/u1/devices", {"device_id": "d1"}, "dispatcher"),
        ("GET", "/v1/units/u1", None, "viewer"),
    ],
)
async def test_roles(pg_api: LiveApi, method: str, path: str, body: Any, least: str) -> None:
    api = pg_api
    await api.json("POST", "/v1/units", json={"id": "u1", "name": "A", "kind": "police"}, status=201)
    await api.json("POST", "/v1/devices", json={"id": "d1", "kind": "phone"}, status=201)
    rank = ["viewer", "dispatcher", "admin"]
    for role in rank:
        response = await api.call(method, path, role, json=body)
        if rank.index(role) < rank.index(least):
            assert response.status == 403, (role, method, path)
            problem = await response.json(content_type=None)
            assert problem["required_role"] == least and problem["role"] == role
        else:
            assert response.status < 400, (role, method, path, await response.text())
            return  # the first allowed role changed the state; higher roles were shown allowed by rank


async def test_a_viewer_cannot_change_plugged_in_routes_either(pg_url: str) -> None:
    plugin = DocumentedRoutes("plugin")

    @plugin.routes.post("/v1/plugin/thing")
    async def undeclared(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    plugin.openapi_paths["/v1/plugin/thing"] = {"post": {"responses": {"200": {"description": "ok"}}}}
    async with running_api(pg_url, plugins=[plugin]) as api:
        assert (await api.call("POST", "/v1/plugin/thing", "viewer")).status == 403
        assert (await api.call("POST", "/v1/plugin/thing", "dispatcher")).status == 200


async def test_ingest_paths_are_left_to_ingest(pg_url: str) -> None:
    plugin = DocumentedRoutes("ingest")

    @plugin.route("POST", "/ingest/osmand", summary="device fixes", role=None)
    async def osmand(request: web.Request) -> web.Response:
        return web.Response(text="device authenticated by ingest")

    async with running_api(pg_url, plugins=[plugin]) as api:
        assert (await api.call("POST", "/ingest/osmand", role=None)).status == 200


async def test_revoked_tokens_stop_working(pg_api: LiveApi) -> None:
    made = await pg_api.json("POST", "/v1/tokens", json={"role": "viewer", "name": "console"}, status=201)
    headers = {"Authorization": f"Bearer {made['token']}"}
    assert (await pg_api.client.get("/v1/units", headers=headers)).status == 200
    listed = await pg_api.json("GET", "/v1/tokens")
    assert all("token" not in t or t["token"] is None for t in listed["tokens"])
    assert (await pg_api.call("DELETE", f"/v1/tokens/{made['id']}")).status == 204
    assert (await pg_api.client.get("/v1/units", headers=headers)).status == 401


async def test_device_credentials_are_shown_once_and_stored_hashed(pg_api: LiveApi) -> None:
    api = pg_api
    await api.json("POST", "/v1/devices", json={"id": "phone-7", "kind": "phone"}, status=201)
    issued = await api.json("POST", "/v1/devices/phone-7/credentials", status=201)
    assert issued["username"] == "phone-7" and len(issued["secret"]) >= 24
    stored = registry.device_credentials_hash(api.engine, "phone-7")
    assert stored is not None and issued["secret"] not in stored and stored.startswith("scrypt$")
    assert verify_secret(issued["secret"], stored) and not verify_secret("guess", stored)
    device = await api.json("GET", "/v1/devices/phone-7", role="viewer")
    assert device["has_credentials"] is True and issued["secret"] not in str(device)
    again = await api.json("POST", "/v1/devices/phone-7/credentials", status=201)
    assert not verify_secret(issued["secret"], registry.device_credentials_hash(api.engine, "phone-7") or "")
    assert verify_secret(again["secret"], registry.device_credentials_hash(api.engine, "phone-7") or "")
    await api.json("POST", "/v1/devices/nobody/credentials", status=404)


def test_token_create_prints_the_token_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"  # not migrated: the command does it
    monkeypatch.setenv("OUTPOST_DATABASE_URL", url)
    assert cli.main(["token", "create", "--role", "dispatcher", "--name", "night desk"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    engine = open_engine(url, pool_size=1)
    try:
        found = access.find_token(engine, token)
        assert found is not None and found.role == "dispatcher" and found.name == "night desk"
        with engine.connect() as conn:
            stored = conn.execute(select(access.api_tokens.c.token_hash)).scalars().all()
        assert token not in stored
    finally:
        engine.dispose()
