"""Geofences over HTTP on PostgreSQL and SQLite: admins draw polygons and circles, every role reads, units
entering, leaving and dwelling are events on the stream; hostile input is a problem, never a 500."""

from __future__ import annotations

import math
from typing import Any

import pytest

from dispatch.keys import PATROL_KEY
from tests.dispatch.conftest import LiveApi, fix

SCHOOL = (-122.4194, 37.7793)
SQUARE = {
    "type": "Polygon",
    "coordinates": [
        [[-122.43, 37.77], [-122.42, 37.77], [-122.42, 37.78], [-122.43, 37.78], [-122.43, 37.77]]
    ],
}


def _at(api: LiveApi, lon: float, lat: float) -> None:
    api.clock.advance(10.0)  # a fix no newer than the last never moves a unit
    api.fleet.apply([fix("u1-phone", "u1", lon, lat, api.clock.now())])


async def test_admins_draw_fences_every_role_reads_and_units_enter_dwell_and_leave(live_api: LiveApi) -> None:
    api = live_api
    await api.json(
        "POST",
        "/v1/units",
        status=201,
        json={"id": "u1", "name": "U1", "kind": "police", "status": "available"},
    )
    _at(api, *SCHOOL)
    sub = api.bus.subscribe()
    circle = {
        "id": "school-1",
        "name": "School",
        "circle": {"lon": SCHOOL[0], "lat": SCHOOL[1], "radius_m": 100},
    }
    made = await api.json("POST", "/v1/geofences", status=201, json=circle | {"dwell_s": 60})
    assert made["kind"] == "circle" and made["circle"]["radius_m"] == 100 and made["dwell_s"] == 60
    assert made["geometry"]["type"] == "Polygon"
    await api.json(
        "POST", "/v1/geofences", status=201, json={"id": "park", "name": "Park", "geometry": SQUARE}
    )
    for role in ("viewer", "dispatcher", "admin"):
        listed = await api.json("GET", "/v1/geofences", role=role)
        assert [f["id"] for f in listed["geofences"]] == ["park", "school-1"]
    one = await api.json("GET", "/v1/geofences/park", role="viewer")
    assert one["kind"] == "polygon" and one["circle"] is None and one["dwell_s"] is None
    # The unit was inside the school when it was drawn: it entered then.
    events = _events(sub, "geofence.")
    assert [(e["type"], e["fence_id"], e["fence_name"]) for e in events] == [
        ("geofence.entered", "school-1", "School")
    ]
    assert events[0]["id"] and events[0]["at"]
    api.clock.advance(60.0)
    await api.app[PATROL_KEY].check()
    assert [e["type"] for e in _events(sub, "geofence.")] == ["geofence.dwell"]
    api.clock.advance(600.0)
    await api.app[PATROL_KEY].check()
    assert _events(sub, "geofence.") == []  # once a stay
    # Driving 300 m east leaves the circle; back west, through the school and the park, between two fixes.
    _at(api, SCHOOL[0] + 0.0035, SCHOOL[1])
    assert [e["type"] for e in _events(sub, "geofence.")] == ["geofence.exited"]
    _at(api, -122.435, 37.775)
    crossed = _events(sub, "geofence.")
    assert [(e["type"], e["fence_id"]) for e in crossed] == [
        ("geofence.entered", "school-1"),
        ("geofence.exited", "school-1"),
        ("geofence.entered", "park"),
        ("geofence.exited", "park"),
    ]
    # Changing and deleting reach the live watch at once.
    moved = {"circle": {"lon": -122.435, "lat": 37.775, "radius_m": 50}, "name": "School (new site)"}
    changed = await api.json("PATCH", "/v1/geofences/school-1", json=moved)
    assert changed["name"] == "School (new site)" and changed["circle"]["lon"] == -122.435
    assert [e["type"] for e in _events(sub, "geofence.")] == ["geofence.entered"]
    await api.json("DELETE", "/v1/geofences/school-1")
    assert [e["type"] for e in _events(sub, "geofence.")] == ["geofence.exited"]
    assert (await api.call("GET", "/v1/geofences/school-1", role="viewer")).status == 404


def _events(sub: Any, prefix: str) -> list[dict[str, Any]]:
    out = []
    while (event := sub.get_nowait()) is not None:
        if event["type"].startswith(prefix):
            out.append(event)
    return out


BAD_BODIES: list[tuple[dict[str, Any], str]] = [
    ({"id": "x", "name": "X"}, "body"),  # neither geometry nor circle
    ({"id": "x", "name": "X", "geometry": SQUARE, "circle": {"lon": 0, "lat": 0, "radius_m": 5}}, "body"),
    ({"id": "x", "name": "X", "circle": {"lon": 0, "lat": 0, "radius_m": 1e12}}, "body.circle.radius_m"),
    ({"id": "x", "name": "X", "circle": {"lon": 0, "lat": 0, "radius_m": 0}}, "body.circle.radius_m"),
    ({"id": "x", "name": "X", "circle": {"lon": 200, "lat": 0, "radius_m": 5}}, "body.circle.lon"),
    ({"id": "x", "name": "X", "circle": {"lon": 0, "lat": 95, "radius_m": 5}}, "body.circle.lat"),
    ({"id": "x", "name": "X\u0000", "geometry": SQUARE}, "body.name"),
    ({"id": "X Y", "name": "X", "geometry": SQUARE}, "body.id"),
    ({"id": "x", "name": "X", "geometry": {"type": "Point", "coordinates": [0, 0]}}, "body.geometry"),
    (
        {"id": "x", "name": "X", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}},
        "body.geometry",
    ),
    ({"id": "x", "name": "X", "geometry": SQUARE, "dwell_s": -1}, "body.dwell_s"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
async def test_hostile_fences_are_problems_naming_the_field(
    sqlite_api: LiveApi, body: dict[str, Any], field: str
) -> None:
    response = await sqlite_api.call("POST", "/v1/geofences", json=body)
    problem = await response.json(content_type=None)
    assert response.status == 400 and response.content_type == "application/problem+json", problem
    assert problem["invalid_params"][0]["name"] == field


async def test_nan_roles_unknown_ids_and_duplicates(live_api: LiveApi) -> None:
    api = live_api
    raw = b'{"id": "x", "name": "X", "circle": {"lon": NaN, "lat": 0, "radius_m": 5}}'
    response = await api.call("POST", "/v1/geofences", data=raw)
    assert response.status == 400
    body = {"id": "x", "name": "X", "circle": {"lon": 0.0, "lat": 0.0, "radius_m": 5.0}}
    for role in ("viewer", "dispatcher"):
        assert (await api.call("POST", "/v1/geofences", role=role, json=body)).status == 403
        assert (await api.call("DELETE", "/v1/geofences/x", role=role)).status == 403
    assert (await api.call("GET", "/v1/geofences", role=None)).status == 401
    await api.json("POST", "/v1/geofences", status=201, json=body)
    again = await api.call("POST", "/v1/geofences", json=body)
    assert again.status == 409 and again.content_type == "application/problem+json"
    for method in ("GET", "PATCH", "DELETE"):
        kw = {"json": {"name": "Y"}} if method == "PATCH" else {}
        assert (await api.call(method, "/v1/geofences/nope", **kw)).status == 404
    assert (await api.call("GET", "/v1/geofences/%00", role="viewer")).status == 400
    assert not math.isnan((await api.json("GET", "/v1/geofences/x"))["circle"]["lon"])
    doc = await api.json("GET", "/openapi.json", role=None)
    assert {"get", "post"} <= set(doc["paths"]["/v1/geofences"]) and "patch" in doc["paths"][
        "/v1/geofences/{id}"
    ]
