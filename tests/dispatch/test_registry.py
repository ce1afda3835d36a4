"""Registry CRUD over HTTP, the same on PostgreSQL and SQLite: units, devices, bindings, status."""

from __future__ import annotations

from tests.dispatch.conftest import START_S, LiveApi, fix


async def test_units_are_created_read_listed_changed_and_disabled(live_api: LiveApi) -> None:
    api = live_api
    made = await api.json(
        "POST",
        "/v1/units",
        json={"id": "u1", "name": "Officer Ada", "kind": "police", "skills": ["first_aid"]},
        status=201,
    )
    assert made["status"] == "off_duty" and made["enabled"] is True and made["skills"] == ["first_aid"]
    await api.json("POST", "/v1/units", json={"id": "u2", "name": "Van 2", "kind": "vehicle"}, status=201)
    await api.json("POST", "/v1/units", json={"id": "u3", "name": "Aux 3", "kind": "auxiliary"}, status=201)

    detail = await api.json("GET", "/v1/units/u1", role="viewer")
    assert detail["unit"]["name"] == "Officer Ada" and detail["position"] is None and detail["devices"] == []

    page = await api.json("GET", "/v1/units?limit=2", role="viewer")
    assert [u["id"] for u in page["units"]] == ["u1", "u2"] and page["next_after"] == "u2"
    rest = await api.json("GET", "/v1/units?limit=2&after=u2", role="viewer")
    assert [u["id"] for u in rest["units"]] == ["u3"] and rest["next_after"] is None
    vehicles = await api.json("GET", "/v1/units?kind=vehicle", role="viewer")
    assert [u["id"] for u in vehicles["units"]] == ["u2"]

    changed = await api.json("PATCH", "/v1/units/u1", json={"skills": ["first_aid", "dog_handler"]})
    assert changed["skills"] == ["first_aid", "dog_handler"] and changed["name"] == "Officer Ada"
    disabled = await api.json("DELETE", "/v1/units/u2")
    assert disabled["enabled"] is False
    assert (await api.json("GET", "/v1/units/u2", role="viewer"))["unit"]["enabled"] is False


async def test_duplicates_and_unknowns_are_problems(live_api: LiveApi) -> None:
    api = live_api
    await api.json("POST", "/v1/units", json={"id": "u1", "name": "A", "kind": "police"}, status=201)
    clash = await api.json("POST", "/v1/units", json={"id": "u1", "name": "B", "kind": "police"}, status=409)
    assert clash["status"] == 409 and "u1" in clash["detail"]
    assert (await api.json("GET", "/v1/units/nobody", role="viewer", status=404))["type"].endswith(
        "not-found"
    )
    await api.json("PATCH", "/v1/units/nobody", json={"name": "x"}, status=404)
    await api.json("POST", "/v1/devices", json={"id": "d1", "kind": "phone"}, status=201)
    await api.json("POST", "/v1/devices", json={"id": "d1", "kind": "radio"}, status=409)
    bad = await api.json("POST", "/v1/units", json={"id": "u9", "name": "C", "kind": "tank"}, status=400)
    assert bad["invalid_params"][0]["name"] == "body.kind"


async def test_devices_and_bindings(live_api: LiveApi) -> None:
    api = live_api
    await api.json(
        "POST",
        "/v1/units",
        json={"id": "u1", "name": "A", "kind": "police", "status": "available"},
        status=201,
    )
    await api.json("POST", "/v1/units", json={"id": "u2", "name": "B", "kind": "police"}, status=201)
    made = await api.json(
        "POST", "/v1/devices", json={"id": "cam-1", "kind": "body_cam", "priority": 2}, status=201
    )
    assert made["has_credentials"] is True and made["priority"] == 2
    assert made["credentials"]["username"] == "cam-1" and len(made["credentials"]["secret"]) >= 32
    shown = await api.json("GET", "/v1/devices/cam-1", role="viewer")
    assert "credentials" not in shown and made["credentials"]["secret"] not in str(shown)  # shown once
    await api.json("POST", "/v1/devices", json={"id": "phone-1", "kind": "phone"}, status=201)
    listed = await api.json("GET", "/v1/devices", role="viewer")
    assert [d["id"] for d in listed["devices"]] == ["cam-1", "phone-1"]
    assert (await api.json("PATCH", "/v1/devices/phone-1", json={"priority": 5}))["priority"] == 5

    shift = {"device_id": "cam-1", "valid_from": "2024-05-30T16:00:00Z", "valid_to": "2024-05-31T02:00:00Z"}
    bound = await api.json("POST", "/v1/units/u1/devices", role="dispatcher", json=shift, status=201)
    assert bound["unit_id"] == "u1" and bound["valid_to"].startswith("2024-05-31T02:00:00")
    overlap = await api.json(
        "POST",
        "/v1/units/u2/devices",
        role="dispatcher",
        json={"device_id": "cam-1", "valid_from": "2024-05-30T20:00:00Z"},
        status=409,
    )
    assert overlap["current_state"]["unit_id"] == "u1"
    await api.json("POST", "/v1/units/u1/devices", role="dispatcher", json={"device_id": "ghost"}, status=404)
    backwards = await api.json(
        "POST",
        "/v1/units/u1/devices",
        role="dispatcher",
        status=400,
        json={
            "device_id": "phone-1",
            "valid_from": "2024-05-30T20:00:00Z",
            "valid_to": "2024-05-30T19:00:00Z",
        },
    )
    assert backwards["invalid_params"][0]["name"] == "body.valid_to"

    api.fleet.apply([fix("cam-1", "u1", -122.41, 37.78, START_S - 5)])
    detail = await api.json("GET", "/v1/units/u1", role="viewer")
    assert [d["id"] for d in detail["devices"]] == ["cam-1"]
    assert detail["devices"][0]["last_fix"]["lon"] == -122.41
    assert detail["position"]["in_index"] is True and detail["position"]["fix_age_s"] == 5.0

    left = await api.json("DELETE", "/v1/units/u1/devices/cam-1", role="dispatcher")
    assert left["bindings"][0]["valid_to"].startswith("2024-05-30T17:00:00")
    assert api.fleet.position("u1") is None and not api.fleet.indexed("u1")
    await api.json("DELETE", "/v1/units/u1/devices/cam-1", role="dispatcher", status=404)
    # Free again: the device can go to the other unit now.
    await api.json("POST", "/v1/units/u2/devices", role="dispatcher", json={"device_id": "cam-1"}, status=201)


async def test_status_changes_and_compare_and_set(live_api: LiveApi) -> None:
    api = live_api
    await api.json("POST", "/v1/units", json={"id": "u1", "name": "A", "kind": "police"}, status=201)
    api.fleet.apply([fix("d1", "u1", 4.35, 50.85, START_S)])
    assert not api.fleet.indexed("u1")  # off duty: position kept, not offered to dispatch
    assert api.fleet.position("u1") is not None
    await api.json("POST", "/v1/units/u1/status", role="dispatcher", json={"status": "available"})
    assert api.fleet.index.get("u1") is not None and api.fleet.index.get("u1").status == "available"  # type: ignore[union-attr]
    clash = await api.json(
        "POST",
        "/v1/units/u1/status",
        role="dispatcher",
        json={"status": "assigned", "expected": ["offered"]},
        status=409,
    )
    assert clash["current_state"] == {"status": "available"}
    await api.json(
        "POST",
        "/v1/units/u1/status",
        role="dispatcher",
        json={"status": "offered", "expected": ["available"]},
    )
    assert (await api.json("GET", "/v1/units/u1", role="viewer"))["unit"]["status"] == "offered"
    await api.json("POST", "/v1/units/u1/status", role="dispatcher", json={"status": "off_duty"})
    assert not api.fleet.indexed("u1")
    await api.json("POST", "/v1/units/nobody/status", role="dispatcher", json={"status": "busy"}, status=404)
    bad = await api.json(
        "POST", "/v1/units/u1/status", role="dispatcher", json={"status": "asleep"}, status=400
    )
    assert bad["invalid_params"][0]["name"] == "body.status"
