"""The OpenAPI document matches the routes both ways (plugins included); one error format everywhere."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from dispatch.openapi import DocumentedRoutes
from tests.dispatch.conftest import LiveApi, running_api

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def _plugin() -> DocumentedRoutes:
    plugin = DocumentedRoutes("incidents")

    class Incident(msgspec.Struct):
        id: str

    @plugin.route("GET", "/v1/incidents/{id}", summary="an incident", role="viewer", response=Incident)
    async def get_incident(request: web.Request) -> web.Response:
        return web.json_response({"id": request.match_info["id"]})

    return plugin


def _routes(app: web.Application) -> set[tuple[str, str]]:
    found = set()
    for route in app.router.routes():
        if route.method in METHODS and route.resource is not None:
            found.add((route.method.lower(), route.resource.canonical))
    return found


async def test_every_route_is_documented_and_every_documented_path_exists(pg_url: str) -> None:
    async with running_api(pg_url, plugins=[_plugin()]) as api:
        doc = await api.json("GET", "/openapi.json", role="viewer")
        documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
        assert documented == _routes(api.app)
        assert ("get", "/v1/incidents/{id}") in documented
        assert "Incident" in doc["components"]["schemas"]


async def test_the_document_is_self_consistent(pg_api: LiveApi) -> None:
    doc = await pg_api.json("GET", "/openapi.json", role="viewer")
    assert doc["openapi"].startswith("3.1")
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    names = set(doc["components"]["schemas"])
    assert refs and all(r.removeprefix("#/components/schemas/") in names for r in refs)
    operation_ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(operation_ids) == len(set(operation_ids))
    for path, ops in doc["paths"].items():
        for name in [seg[1:-1] for seg in path.split("/") if seg.startswith("{")]:
            for op in ops.values():
                assert any(p["in"] == "path" and p["name"] == name for p in op.get("parameters", [])), path
    assert doc["paths"]["/healthz"]["get"]["security"] == []
    nearest = {p["name"] for p in doc["paths"]["/v1/units/nearest"]["get"]["parameters"]}
    assert nearest == {
        "lon",
        "lat",
        "k",
        "status",
        "kind",
        "skill",
        "max_age_s",
        "radius_m",
        "max_accuracy_m",
    }


async def test_problem_details_everywhere(sqlite_api: LiveApi) -> None:
    api = sqlite_api
    cases = [
        (await api.call("GET", "/v1/nothing-here", "viewer"), 404),
        (await api.call("PUT", "/v1/units", "admin"), 405),
        (await api.call("GET", "/v1/units/ghost", "viewer"), 404),
        (await api.call("POST", "/v1/units", "admin", data=b"{not json"), 400),
        (await api.call("POST", "/v1/units", "admin", json={"id": "x"}), 400),
        (
            await api.call("POST", "/v1/units", "admin", json={"id": "a b", "name": "n", "kind": "police"}),
            400,
        ),
        (await api.call("GET", "/v1/units?bbox=1,2,3", "viewer"), 400),
        (await api.call("POST", "/v1/units", "viewer", json={}), 403),
        (await api.call("GET", "/v1/units", None), 401),
    ]
    for response, status in cases:
        assert response.status == status
        assert response.headers["Content-Type"] == "application/problem+json"
        body = await response.json(content_type=None)
        assert body["status"] == status and body["type"].startswith("https://")
        assert body["title"] and body["detail"] and body["instance"].startswith("/")
    missing = await cases[4][0].json(content_type=None)
    assert missing["invalid_params"] == [
        {"name": "body.name", "reason": "Object missing required field `name`"}
    ]
    bad_id = await cases[5][0].json(content_type=None)
    assert bad_id["invalid_params"][0]["name"] == "body.id"
    assert (await cases[1][0].json(content_type=None))["detail"] == "Method Not Allowed"
