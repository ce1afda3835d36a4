"""Grids over HTTP, on PostgreSQL and SQLite: GeoJSON reads for every role, admin-only writes, problems for
bad ids, levels, geometry and hostile input (never a 500)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest

from sim.simulate.build_demo_data import DISTRICTS_PATH, NEIGHBORHOODS_PATH
from store import grids
from tests.dispatch.conftest import START_S, LiveApi

NOW = datetime.fromtimestamp(START_S, UTC)
SQUARE = {
    "type": "Polygon",
    "coordinates": [
        [[-122.42, 37.76], [-122.41, 37.76], [-122.41, 37.77], [-122.42, 37.77], [-122.42, 37.76]]
    ],
}


def _load_sf(api: LiveApi) -> None:
    for path, level, prop in (
        (DISTRICTS_PATH, "police", "district"),
        (NEIGHBORHOODS_PATH, "community", "neighborhood"),
    ):
        doc = json.loads(path.read_text(encoding="utf-8"))
        grids.import_grids(api.engine, doc, level=level, name_property=prop, now=NOW)


async def test_every_role_reads_grids_as_geojson(live_api: LiveApi) -> None:
    api = live_api
    _load_sf(api)
    for role in ("viewer", "dispatcher", "admin"):
        response = await api.call("GET", "/v1/grids", role=role)
        assert response.status == 200 and response.content_type == "application/geo+json"
        doc = await response.json(content_type=None)
        assert doc["type"] == "FeatureCollection" and len(doc["features"]) == 51
    police = await api.json("GET", "/v1/grids?level=police", role="viewer")
    assert [f["properties"]["name"] for f in police["features"]][:2] == ["BAYVIEW", "CENTRAL"]
    children = await api.json("GET", "/v1/grids?parent=police-mission", role="viewer")
    assert {f["id"] for f in children["features"]} >= {"community-mission", "community-noe-valley"}
    assert all(f["properties"]["level"] == "community" for f in children["features"])
    one = await api.json("GET", "/v1/grids/community-mission", role="viewer")
    assert one["type"] == "Feature" and one["geometry"]["type"] == "MultiPolygon"
    assert one["properties"] | {"valid_from": None} == {
        "id": "community-mission",
        "level": "community",
        "name": "Mission",
        "parent_id": "police-mission",
        "version": 1,
        "valid_from": None,
        "valid_to": None,
    }
    past = await api.json("GET", "/v1/grids?at=2000-01-01T00:00:00Z", role="viewer")
    assert past["features"] == []
    await api.json("GET", "/v1/grids/community-mission?at=2000-01-01T00:00:00Z", role="viewer", status=404)
    assert (await api.call("GET", "/v1/grids", role=None)).status == 401


async def test_admins_create_change_and_retire_and_others_may_not(live_api: LiveApi) -> None:
    api = live_api
    _load_sf(api)
    body = {"id": "beat-7", "level": "community", "name": "Beat 7", "geometry": SQUARE}
    for role in ("viewer", "dispatcher"):
        assert (await api.call("POST", "/v1/grids", role=role, json=body)).status == 403
        assert (
            await api.call("PATCH", "/v1/grids/community-mission", role=role, json={"name": "x"})
        ).status == 403
        assert (await api.call("DELETE", "/v1/grids/community-mission", role=role)).status == 403
    made = await api.json("POST", "/v1/grids", json=body, status=201)
    assert made["properties"]["parent_id"] == "police-mission" and made["properties"]["version"] == 1
    await api.json("POST", "/v1/grids", json=body, status=409)

    api.clock.advance(60)
    moved = {**SQUARE, "coordinates": [[[x + 0.001, y] for x, y in SQUARE["coordinates"][0]]]}
    changed = await api.json(
        "PATCH", "/v1/grids/beat-7", json={"geometry": moved, "parent_id": "police-park"}
    )
    assert changed["properties"]["version"] == 2 and changed["properties"]["parent_id"] == "police-park"
    same = await api.json("PATCH", "/v1/grids/beat-7", json={"name": "Beat 7"})
    assert same["properties"]["version"] == 2

    await api.json("DELETE", "/v1/grids/police-park", status=409)
    api.clock.advance(60)
    retired = await api.json("DELETE", "/v1/grids/beat-7")
    assert retired["properties"]["valid_to"] is not None
    await api.json("GET", "/v1/grids/beat-7", role="viewer", status=404)
    await api.json("DELETE", "/v1/grids/beat-7", status=404)
    earlier = await api.json("GET", "/v1/grids/beat-7?at=" + made["properties"]["valid_from"], role="viewer")
    assert earlier["properties"]["version"] == 1


async def test_bad_input_is_a_problem_naming_what_is_wrong(live_api: LiveApi) -> None:
    api = live_api
    _load_sf(api)
    cases: list[tuple[str, str, Any, str]] = [
        ("GET", "/v1/grids?level=city", None, "level"),
        ("GET", "/v1/grids?level=police,community", None, "level"),
        ("GET", "/v1/grids?at=yesterday", None, "at"),
        ("GET", "/v1/grids?at=2024-05-30T17:00:00", None, "at"),
        ("POST", "/v1/grids", {"id": "b1", "level": "city", "name": "x", "geometry": SQUARE}, "body.level"),
        ("POST", "/v1/grids", {"id": "B 1", "level": "police", "name": "x", "geometry": SQUARE}, "body.id"),
        (
            "POST",
            "/v1/grids",
            {
                "id": "b1",
                "level": "police",
                "name": "x",
                "geometry": {"type": "Point", "coordinates": [0, 0]},
            },
            "body.geometry",
        ),
        (
            "POST",
            "/v1/grids",
            {
                "id": "b1",
                "level": "police",
                "name": "x",
                "geometry": {**SQUARE, "coordinates": [SQUARE["coordinates"][0][:-1]]},
            },
            "body.geometry",
        ),
        (
            "POST",
            "/v1/grids",
            {"id": "b1", "level": "police", "name": "x", "parent_id": "police-park", "geometry": SQUARE},
            "body",
        ),
        (
            "POST",
            "/v1/grids",
            {"id": "b1", "level": "community", "name": "x", "parent_id": "nope", "geometry": SQUARE},
            "body",
        ),
        ("PATCH", "/v1/grids/community-mission", {"colour": "red"}, "body.colour"),
        (
            "PATCH",
            "/v1/grids/community-mission",
            {"geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}},
            "body.geometry",
        ),
    ]
    for method, path, body, name in cases:
        problem = await api.json(method, path, json=body, status=400)
        assert problem["invalid_params"][0]["name"] == name, (path, body, problem)
    bowtie = {
        "type": "Polygon",
        "coordinates": [
            [[-122.42, 37.76], [-122.41, 37.77], [-122.41, 37.76], [-122.42, 37.77], [-122.42, 37.76]]
        ],
    }
    repaired = await api.json(
        "POST",
        "/v1/grids",
        json={"id": "bow", "level": "police", "name": "Bow", "geometry": bowtie},
        status=201,
    )
    assert repaired["geometry"]["type"] == "MultiPolygon"


@pytest.mark.parametrize(
    "grid_id",
    [
        "x" * 5000,
        "ünïcødé",
        "🚓",
        "1' OR '1'='1",
        "police-mission; DROP TABLE grids",
        "%00",
        "..",
        "POLICE-MISSION",
        "-leading",
    ],
)
async def test_hostile_ids_are_400_or_404_never_500(sqlite_api: LiveApi, grid_id: str) -> None:
    api = sqlite_api
    path = "/v1/grids/" + quote(grid_id, safe="")
    for method, role, body in (
        ("GET", "viewer", None),
        ("PATCH", "admin", {"name": "x"}),
        ("DELETE", "admin", None),
    ):
        response = await api.call(method, path, role=role, json=body)
        assert response.status in (400, 404), (method, grid_id, response.status)
        assert response.content_type == "application/problem+json"
    response = await api.call("GET", "/v1/grids?parent=" + quote(grid_id, safe=""), role="viewer")
    assert response.status in (200, 400)
    assert (await api.call("GET", "/v1/grids/nobody-here", role="viewer")).status == 404


async def test_the_openapi_document_lists_the_grid_routes(sqlite_api: LiveApi) -> None:
    doc = await sqlite_api.json("GET", "/openapi.json", role="viewer")
    assert set(doc["paths"]["/v1/grids"]) == {"get", "post"}
    assert set(doc["paths"]["/v1/grids/{id}"]) == {"get", "patch", "delete"}
    assert "GridIn" in doc["components"]["schemas"]
