"""The live map's routes: the page and its files are public and hold no data (and nothing outside the
static folder is served); its config and the wall's figure need a token, any role; problems are
problem+json; every route is in the OpenAPI document."""

from __future__ import annotations

import pytest

from dispatch.routes.web import tiles_of
from dispatch.settings import ApiSettings
from tests.dispatch.conftest import LiveApi, running_api

ROLES = ("viewer", "dispatcher", "admin")


async def test_root_redirects_to_the_page_without_a_token(sqlite_api: LiveApi) -> None:
    response = await sqlite_api.call("GET", "/", role=None, allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/map"


async def test_the_page_and_its_files_are_public_with_a_strict_policy(sqlite_api: LiveApi) -> None:
    page = await sqlite_api.call("GET", "/map", role=None)
    assert page.status == 200 and page.content_type == "text/html"
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy and "unsafe" not in policy
    html = await page.text()
    assert "https://" not in html and "http://" not in html  # nothing from a CDN
    module = await sqlite_api.call("GET", "/map/static/js/main.js", role=None)
    assert module.status == 200 and module.content_type == "text/javascript"
    vendor = await sqlite_api.call("GET", "/map/static/vendor/leaflet-1.9.4/LICENSE", role=None)
    assert vendor.status == 200 and "max-age" in vendor.headers["Cache-Control"]
    districts = await sqlite_api.call("GET", "/map/static/data/sf_police_districts.geojson", role=None)
    assert districts.status == 200
    assert (await districts.json(content_type=None))["type"] == "FeatureCollection"


@pytest.mark.parametrize(
    "path",
    [
        "/map/static/../routes/web.py",
        "/map/static/%2e%2e/routes/web.py",
        "/map/static/..%2f..%2fsettings.py",
        "/map/static/js",
        "/map/static/nothing.js",
    ],
)
async def test_nothing_outside_the_static_files_is_served(sqlite_api: LiveApi, path: str) -> None:
    # A path with ".." is normalised before routing: it lands outside the public files and needs a token.
    response = await sqlite_api.call("GET", path, role=None)
    assert response.status in (401, 404)
    if response.status == 404:
        assert response.headers["Content-Type"].startswith("application/problem+json")


@pytest.mark.parametrize("path", ["/v1/map/config", "/v1/map/response-today"])
async def test_the_map_data_needs_a_token_of_any_role(sqlite_api: LiveApi, path: str) -> None:
    anonymous = await sqlite_api.call("GET", path, role=None)
    assert anonymous.status == 401
    assert anonymous.headers["Content-Type"].startswith("application/problem+json")
    for role in ROLES:
        await sqlite_api.json("GET", path, role=role)
    assert (await sqlite_api.call("POST", path, role="admin")).status == 405


async def test_the_config_names_the_caller_and_the_shipped_base_layer(sqlite_api: LiveApi) -> None:
    for role in ROLES:
        config = await sqlite_api.json("GET", "/v1/map/config", role=role)
        assert (config["role"], config["token_name"]) == (role, f"test-{role}")
    assert config["tiles"] is None
    assert {b["name"] for b in config["base_layers"]} == {"Police districts", "Roads"}


async def test_tiles_come_from_the_setting_and_open_the_policy_to_their_server(sqlite_url: str) -> None:
    settings = ApiSettings(map_tiles="https://{s}.tiles.station.local/{z}/{x}/{y}.png|© OSM contributors")
    async with running_api(sqlite_url, settings=settings) as api:
        config = await api.json("GET", "/v1/map/config", role="viewer")
        assert config["tiles"] == {
            "url": "https://{s}.tiles.station.local/{z}/{x}/{y}.png",
            "attribution": "© OSM contributors",
        }
        page = await api.call("GET", "/map", role=None)
        assert "img-src 'self' data: https://*.tiles.station.local" in page.headers["Content-Security-Policy"]
    assert tiles_of("") is None


async def test_the_median_response_of_today_is_none_without_incidents(sqlite_api: LiveApi) -> None:
    found = await sqlite_api.json("GET", "/v1/map/response-today", role="viewer")
    assert found["responded"] == 0 and found["median_response_s"] is None


async def test_every_map_route_is_documented(sqlite_api: LiveApi) -> None:
    doc = await sqlite_api.json("GET", "/openapi.json", role="viewer")
    for path in ("/", "/map", "/map/static/{path}"):
        assert doc["paths"][path]["get"]["security"] == []
    for path in ("/v1/map/config", "/v1/map/response-today"):
        assert "401" in doc["paths"][path]["get"]["responses"]
    stream = {p["name"] for p in doc["paths"]["/v1/stream"]["get"]["parameters"]}
    assert stream == {"bbox", "Last-Event-ID"}
