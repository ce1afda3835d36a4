"""The patrol watch end to end over the API, on PostgreSQL and SQLite, driven by a manual clock: grids on
units' live views (one unit, the list, nearest, the stream), grid enter/exit on the stream, out-of-grid
alerts (dwell, incident excuse, clearing), coverage gaps and GET /v1/grids/coverage, grids reloaded on
API writes and by the periodic refresh (an import by another process)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shapely.geometry import MultiPolygon, box

from dispatch.events import Subscription
from dispatch.keys import PATROL_KEY
from store import grids as grid_store
from tests.dispatch.conftest import START_S, LiveApi, fix

X0, Y0, STEP = -122.42, 37.76, 0.01  # two community squares of 0.01° (≈ 880 m wide) in one police grid
LEFT_MIDDLE = (X0 + 0.005, Y0 + 0.005)
RIGHT_MIDDLE = (X0 + 0.015, Y0 + 0.005)


def _square(x: float, y: float, w: float, h: float) -> dict[str, Any]:
    ring = [[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]]
    return {"type": "Polygon", "coordinates": [ring]}


async def _world(api: LiveApi) -> None:
    await api.json(
        "POST",
        "/v1/grids",
        status=201,
        json={"id": "police-p", "level": "police", "name": "P", "geometry": _square(X0, Y0, 2 * STEP, STEP)},
    )
    for gid, name, x in (("community-left", "Left", X0), ("community-right", "Right", X0 + STEP)):
        body = {"id": gid, "level": "community", "name": name, "parent_id": "police-p"}
        await api.json("POST", "/v1/grids", status=201, json=body | {"geometry": _square(x, Y0, STEP, STEP)})
    unit = {"id": "a1", "name": "Aux 1", "kind": "auxiliary", "status": "available"}
    await api.json("POST", "/v1/units", status=201, json=unit)


def _move(api: LiveApi, at: tuple[float, float]) -> None:
    api.fleet.apply([fix("a1-phone", "a1", at[0], at[1], api.clock.now())])


def _drain(sub: Subscription, kind_prefix: str = "") -> list[dict[str, Any]]:
    out = []
    while (event := sub.get_nowait()) is not None:
        if event["type"].startswith(kind_prefix):
            out.append(event)
    return out


async def test_live_views_carry_the_grids_and_crossings_are_events(live_api: LiveApi) -> None:
    api = live_api
    await _world(api)
    sub = api.bus.subscribe()
    _move(api, LEFT_MIDDLE)
    entered = _drain(sub, "grid.")
    assert [(e["type"], e["grid_id"], e["level"]) for e in entered] == [
        ("grid.entered", "community-left", "community"),
        ("grid.entered", "police-p", "police"),
    ]
    assert all(isinstance(e["id"], str) and e["at"] == datetime.fromtimestamp(START_S, UTC) for e in entered)
    left, police = {"id": "community-left", "name": "Left"}, {"id": "police-p", "name": "P"}
    unit = await api.json("GET", "/v1/units/a1", role="viewer")
    assert (unit["position"]["community_grid"], unit["position"]["police_grid"]) == (left, police)
    listed = await api.json("GET", "/v1/units", role="viewer")
    assert listed["units"][0]["position"]["community_grid"] == left
    lon, lat = LEFT_MIDDLE
    near = await api.json("GET", f"/v1/units/nearest?lon={lon}&lat={lat}", role="viewer")
    assert (near["units"][0]["community_grid"], near["units"][0]["police_grid"]) == (left, police)
    api.bus.flush()
    moved = [e for e in _drain(sub) if e["type"] == "unit.moved"]
    assert moved[-1]["community_grid"] == left and moved[-1]["police_grid"] == police
    # Across the border between two fixes: left, then right, at the crossing's time and place.
    api.clock.advance(10.0)
    _move(api, RIGHT_MIDDLE)
    crossed = _drain(sub, "grid.")
    assert [(e["type"], e["grid_id"]) for e in crossed] == [
        ("grid.exited", "community-left"),
        ("grid.entered", "community-right"),
    ]
    assert crossed[0]["lon"] == X0 + STEP and crossed[0]["at"] == datetime.fromtimestamp(START_S + 5.0, UTC)
    unit = await api.json("GET", "/v1/units/a1", role="viewer")
    assert unit["position"]["community_grid"] == {"id": "community-right", "name": "Right"}


async def test_grid_changes_through_the_api_and_imports_elsewhere_reach_the_live_view(
    live_api: LiveApi,
) -> None:
    api = live_api
    await _world(api)
    _move(api, LEFT_MIDDLE)
    sub = api.bus.subscribe()
    await api.json("PATCH", "/v1/grids/community-left", json={"name": "Left Bank"})
    unit = await api.json("GET", "/v1/units/a1", role="viewer")
    assert unit["position"]["community_grid"] == {"id": "community-left", "name": "Left Bank"}
    await api.json("DELETE", "/v1/grids/community-left")
    assert [(e["type"], e["grid_id"]) for e in _drain(sub, "grid.")] == [("grid.exited", "community-left")]
    unit = await api.json("GET", "/v1/units/a1", role="viewer")
    assert unit["position"]["community_grid"] is None
    # Another process (outpost grids import) writes the database: the periodic refresh's reload finds it.
    grid_store.create_grid(
        api.engine,
        grid_id="community-new",
        level="community",
        name="New",
        parent_id="police-p",
        geometry=MultiPolygon([box(X0 + 0.004, Y0 + 0.004, X0 + 0.006, Y0 + 0.006)]),
        now=datetime.fromtimestamp(api.clock.now(), UTC),
    )
    await api.app[PATROL_KEY].reload()
    assert [(e["type"], e["grid_id"]) for e in _drain(sub, "grid.")] == [("grid.entered", "community-new")]


async def _assign(api: LiveApi, grid_id: str) -> dict[str, Any]:
    now = datetime.fromtimestamp(api.clock.now(), UTC)
    body = {
        "unit_id": "a1",
        "grid_id": grid_id,
        "starts_at": now.isoformat(),
        "ends_at": (now + timedelta(hours=8)).isoformat(),
    }
    made: dict[str, Any] = await api.json("POST", "/v1/assignments", role="dispatcher", status=201, json=body)
    return made


async def _tick(api: LiveApi, s: float, at: tuple[float, float]) -> None:
    """Move the clock on, the unit reports where it is, the watch checks."""
    api.clock.advance(s)
    _move(api, at)
    await api.app[PATROL_KEY].check()


async def test_out_of_grid_after_the_dwell_excused_on_an_incident_cleared_back_inside(
    live_api: LiveApi,
) -> None:
    api = live_api
    await _world(api)
    _move(api, RIGHT_MIDDLE)  # 440 m east of community-left
    sub = api.bus.subscribe()
    await _assign(api, "community-left")
    await _tick(api, 299.0, RIGHT_MIDDLE)
    assert _drain(sub, "out_of_grid.") == []
    coverage = await api.json("GET", "/v1/grids/coverage?level=community", role="viewer")
    left = next(g for g in coverage["grids"] if g["grid_id"] == "community-left")
    assert left["holder"]["out_of_grid"] == "outside" and not left["holder"]["covering"]
    assert left["inside"] == [] and left["gap"]["raised_at"] is None
    right = next(g for g in coverage["grids"] if g["grid_id"] == "community-right")
    assert right["holder"] is None and [i["unit_id"] for i in right["inside"]] == ["a1"]
    await _tick(api, 1.0, RIGHT_MIDDLE)
    raised = _drain(sub, "out_of_grid.")
    assert [(e["type"], e["unit_id"], e["grid_id"]) for e in raised] == [
        ("out_of_grid.raised", "a1", "community-left")
    ]
    assert raised[0]["distance_m"] > 400 and raised[0]["id"]
    # Sent to an incident over there: excused, and the reason is shown.
    await api.json("POST", "/v1/units/a1/status", role="dispatcher", json={"status": "en_route"})
    await _tick(api, 1.0, RIGHT_MIDDLE)
    cleared = _drain(sub, "out_of_grid.")
    assert [(e["type"], e["reason"]) for e in cleared] == [
        ("out_of_grid.cleared", "on an incident (status en_route)")
    ]
    coverage = await api.json("GET", "/v1/grids/coverage", role="viewer")
    holder = next(g for g in coverage["grids"] if g["grid_id"] == "community-left")["holder"]
    assert holder["out_of_grid"] == "excused" and "incident" in holder["out_of_grid_reason"]
    assert holder["reason"] == "busy elsewhere (status en_route)"
    # Back to patrol and back inside: nothing raised again, and a move inside clears nothing more.
    await api.json("POST", "/v1/units/a1/status", role="dispatcher", json={"status": "available"})
    await _tick(api, 1.0, LEFT_MIDDLE)
    assert _drain(sub, "out_of_grid.") == []
    holder = (await api.json("GET", "/v1/grids/coverage", role="viewer"))["grids"][0]
    assert holder["grid_id"] == "community-left" and holder["holder"]["covering"]


async def test_a_coverage_gap_is_raised_after_its_time_and_cleared_when_covered(live_api: LiveApi) -> None:
    api = live_api
    await _world(api)
    _move(api, RIGHT_MIDDLE)
    sub = api.bus.subscribe()
    await _assign(api, "community-left")
    await _tick(api, 599.0, RIGHT_MIDDLE)
    assert _drain(sub, "coverage_gap.") == []
    await _tick(api, 1.0, RIGHT_MIDDLE)
    gaps = _drain(sub, "coverage_gap.")
    assert [(e["type"], e["grid_id"], e["unit_id"]) for e in gaps] == [
        ("coverage_gap.raised", "community-left", "a1")
    ]
    assert gaps[0]["reason"].startswith("a1 is absent (")
    coverage = await api.json("GET", "/v1/grids/coverage", role="viewer")
    gap = next(g for g in coverage["grids"] if g["grid_id"] == "community-left")["gap"]
    assert gap["since"] == datetime.fromtimestamp(START_S, UTC).isoformat().replace("+00:00", "Z")
    await api.json("POST", "/v1/units/a1/status", role="dispatcher", json={"status": "off_duty"})
    await _tick(api, 1.0, LEFT_MIDDLE)
    assert _drain(sub, "coverage_gap.") == []  # inside, but off duty: still a gap
    await api.json("POST", "/v1/units/a1/status", role="dispatcher", json={"status": "available"})
    await _tick(api, 1.0, LEFT_MIDDLE)
    assert [e["type"] for e in _drain(sub, "coverage_gap.")] == ["coverage_gap.cleared"]


async def test_coverage_is_for_every_role_documented_and_a_bad_level_is_a_problem(live_api: LiveApi) -> None:
    api = live_api
    assert (await api.call("GET", "/v1/grids/coverage", role=None)).status == 401
    for role in ("viewer", "dispatcher", "admin"):
        assert (await api.json("GET", "/v1/grids/coverage", role=role))["grids"] == []
    response = await api.call("GET", "/v1/grids/coverage?level=planet", role="viewer")
    problem = await response.json(content_type=None)
    assert response.status == 400 and response.content_type == "application/problem+json"
    assert problem["invalid_params"][0]["name"] == "level"
    doc = await api.json("GET", "/openapi.json", role=None)
    assert "/v1/grids/coverage" in doc["paths"] and "get" in doc["paths"]["/v1/grids/coverage"]


async def test_raised_alerts_are_listed_acknowledged_once_for_every_console_and_cleared(
    live_api: LiveApi,
) -> None:
    api = live_api
    await _world(api)
    _move(api, RIGHT_MIDDLE)
    await _assign(api, "community-left")
    await _tick(api, 300.0, RIGHT_MIDDLE)  # out of grid past its dwell
    [alert] = (await api.json("GET", "/v1/alerts", role="viewer"))["alerts"]
    assert (alert["type"], alert["event"]["unit_id"], alert["acknowledged_by"]) == (
        "out_of_grid.raised",
        "a1",
        None,
    )
    sub = api.bus.subscribe()
    problem = await api.json("POST", f"/v1/alerts/{alert['id']}/acknowledge", role="viewer", status=403)
    assert problem["status"] == 403
    done = await api.json("POST", f"/v1/alerts/{alert['id']}/acknowledge", role="dispatcher")
    assert done["acknowledged_by"].endswith(":test-dispatcher") and done["acknowledged_at"]
    again = await api.json("POST", f"/v1/alerts/{alert['id']}/acknowledge", role="admin")
    assert again["acknowledged_by"] == done["acknowledged_by"]  # the first acknowledgement stays
    await api.json("POST", f"/v1/alerts/{alert['id']}/acknowledge", role="dispatcher")  # told once only
    [told] = _drain(sub, "alert.")
    assert (told["type"], told["alert_id"], told["alert_type"]) == (
        "alert.acknowledged",
        alert["id"],
        alert["type"],
    )
    await api.json("POST", "/v1/alerts/no-such-alert/acknowledge", role="dispatcher", status=404)
    await _tick(api, 1.0, LEFT_MIDDLE)  # back inside: cleared, off the list, no longer acknowledgeable
    assert (await api.json("GET", "/v1/alerts", role="viewer"))["alerts"] == []
    await api.json("POST", f"/v1/alerts/{alert['id']}/acknowledge", role="dispatcher", status=404)
