"""Shifts and assignments over HTTP, on PostgreSQL and SQLite: every role, the seed's rules as 409s naming
the holder, replace, ending, the audit trail, and hostile input as 4xx problems naming the field (never a
500)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from store import access
from tests.dispatch.conftest import START_S, LiveApi
from tests.support.duty import seed

NOW = datetime.fromtimestamp(START_S, UTC)  # 2024-05-30T17:00:00Z
H = timedelta(hours=1)


def _t(offset: timedelta) -> str:
    return (NOW + offset).isoformat().replace("+00:00", "Z")


def _body(unit: str, grid: str, start_h: float, end_h: float, **kw: Any) -> dict[str, Any]:
    return {"unit_id": unit, "grid_id": grid, "starts_at": _t(start_h * H), "ends_at": _t(end_h * H), **kw}


async def test_admins_make_shifts_and_every_role_reads_them(live_api: LiveApi) -> None:
    api = live_api
    body = {"name": "day", "starts_at": _t(0 * H), "ends_at": START_S + 8 * 3600}
    for role in ("viewer", "dispatcher"):
        assert (await api.call("POST", "/v1/shifts", role=role, json=body)).status == 403
    assert (await api.call("POST", "/v1/shifts", role=None, json=body)).status == 401
    made = await api.json("POST", "/v1/shifts", json=body, status=201)
    assert made["name"] == "day" and made["ends_at"] == _t(8 * H)
    for role in ("viewer", "dispatcher", "admin"):
        listed = await api.json("GET", f"/v1/shifts?from={_t(H)}&to={_t(2 * H)}", role=role)
        assert [s["id"] for s in listed["shifts"]] == [made["id"]]
    assert (await api.json("GET", f"/v1/shifts?from={_t(8 * H)}", role="viewer"))["shifts"] == []
    assert len((await api.json("GET", "/v1/shifts", role="viewer"))["shifts"]) == 1


async def test_dispatchers_assign_and_clashes_name_the_holder(live_api: LiveApi) -> None:
    api = live_api
    seed(api.engine, NOW - 24 * H)
    for role in ("viewer",):
        assert (
            await api.call("POST", "/v1/assignments", role=role, json=_body("p1", "police-1", 0, 8))
        ).status == 403
    made = await api.json(
        "POST", "/v1/assignments", role="dispatcher", json=_body("p1", "police-1", 0, 8), status=201
    )
    first = made["assignment"]
    assert made["replaced"] == [] and first["until"] == first["ends_at"]

    taken = await api.json(
        "POST", "/v1/assignments", role="dispatcher", json=_body("p2", "police-1", 4, 12), status=409
    )
    assert taken["type"].endswith("/conflict")
    assert taken["holder"] | {"starts_at": None, "until": None} == {
        "rule": "grid",
        "assignment_id": first["id"],
        "unit_id": "p1",
        "grid_id": "police-1",
        "starts_at": None,
        "until": None,
    }
    assert "grid police-1 is held by unit p1" in taken["detail"]
    busy = await api.json(
        "POST", "/v1/assignments", role="dispatcher", json=_body("p1", "police-2", 1, 2), status=409
    )
    assert busy["holder"]["rule"] == "unit" and "unit p1 holds grid police-1" in busy["detail"]

    replaced = await api.json(
        "POST",
        "/v1/assignments",
        role="dispatcher",
        json=_body("p2", "police-1", 4, 12, replace=True),
        status=201,
    )
    (old,) = replaced["replaced"]
    assert old["id"] == first["id"] and old["until"] == _t(4 * H)
    assert old["replaced_by"] == replaced["assignment"]["id"] and old["ended_by"].endswith(":test-dispatcher")

    for role in ("viewer", "dispatcher", "admin"):
        at = await api.json("GET", f"/v1/assignments?at={_t(H)}", role=role)
        assert [(a["unit_id"], a["grid_id"]) for a in at["assignments"]] == [("p1", "police-1")]
    now = await api.json("GET", "/v1/assignments?at=" + str(START_S + 5 * 3600), role="viewer")
    assert [a["unit_id"] for a in now["assignments"]] == ["p2"]
    assert (await api.json("GET", "/v1/assignments?unit=p1", role="viewer"))["assignments"][0][
        "grid_id"
    ] == "police-1"
    assert (await api.json("GET", f"/v1/assignments?at={_t(5 * H)}&grid=police-2", role="viewer"))[
        "assignments"
    ] == []

    shift = await api.json(
        "POST", "/v1/shifts", json={"name": "late", "starts_at": _t(0 * H), "ends_at": _t(8 * H)}, status=201
    )
    aux = await api.json(
        "POST",
        "/v1/assignments",
        role="dispatcher",
        json={"unit_id": "a1", "grid_id": "community-1", "shift_id": shift["id"]},
        status=201,
    )
    assert aux["assignment"]["shift_id"] == shift["id"] and aux["assignment"]["ends_at"] == shift["ends_at"]


async def test_ending_an_assignment_and_the_audit_trail(live_api: LiveApi) -> None:
    api = live_api
    seed(api.engine, NOW - 24 * H)
    made = await api.json(
        "POST", "/v1/assignments", role="dispatcher", json=_body("a1", "community-1", -1, 8), status=201
    )
    path = f"/v1/assignments/{made['assignment']['id']}"
    assert (await api.call("DELETE", path, role="viewer")).status == 403
    api.clock.advance(600)
    ended = await api.json("DELETE", path, role="dispatcher")
    assert ended["ended_at"] == ended["until"] == _t(timedelta(minutes=10))
    assert (await api.json("GET", "/v1/assignments", role="viewer"))["assignments"] == []
    await api.json("DELETE", path, role="dispatcher", status=409)
    await api.json("DELETE", "/v1/assignments/99999", role="dispatcher", status=404)
    shift = await api.json(
        "POST", "/v1/shifts", json={"name": "x", "starts_at": _t(H), "ends_at": _t(2 * H)}, status=201
    )

    await api.flush_audit()
    actions = {(e.action, e.subject) for e in access.read_audit(api.engine)}
    assert {
        ("create_assignment", f"assignment:{made['assignment']['id']}"),
        ("end_assignment", f"assignment:{made['assignment']['id']}"),
        ("create_shift", f"shift:{shift['id']}"),
    } <= actions


async def test_hostile_input_is_a_problem_naming_the_field(live_api: LiveApi) -> None:
    api = live_api
    seed(api.engine, NOW - 24 * H)
    long_id = "u" * 5000
    cases: list[tuple[str, str, Any, str, int]] = [
        ("POST", "/v1/shifts", {"name": "d", "starts_at": _t(H), "ends_at": _t(0 * H)}, "body.ends_at", 400),
        (
            "POST",
            "/v1/shifts",
            {"name": "d", "starts_at": "yesterday", "ends_at": _t(H)},
            "body.starts_at",
            400,
        ),
        (
            "POST",
            "/v1/shifts",
            {"name": "d", "starts_at": "2024-05-30T17:00:00", "ends_at": _t(H)},
            "body.starts_at",
            400,
        ),
        (
            "POST",
            "/v1/shifts",
            {"name": "d\u0000", "starts_at": _t(0 * H), "ends_at": _t(H)},
            "body.name",
            400,
        ),
        ("POST", "/v1/shifts", {"name": "", "starts_at": _t(0 * H), "ends_at": _t(H)}, "body.name", 400),
        ("POST", "/v1/shifts", {"name": "d", "starts_at": -5, "ends_at": 1e300}, "body.starts_at", 400),
        (
            "POST",
            "/v1/shifts",
            {"name": "d", "starts_at": _t(0 * H), "ends_at": _t(H), "x": 1},
            "body.x",
            400,
        ),
        (
            "POST",
            "/v1/shifts",
            {"name": "d", "starts_at": _t(0 * H), "ends_at": "9999-12-31T23:00:00-05:00"},
            "body.ends_at",
            400,
        ),
        (
            "POST",
            "/v1/shifts",
            {"name": "d", "starts_at": "0001-01-01T00:00:00+05:00", "ends_at": _t(H)},
            "body.starts_at",
            400,
        ),
        ("POST", "/v1/assignments", _body("p1", "police-1", 2, 1), "body.ends_at", 400),
        ("POST", "/v1/assignments", _body("p1", "police-1", 2, 2), "body.ends_at", 400),
        ("POST", "/v1/assignments", _body("zz", "police-1", 0, 1), "body.unit_id", 400),
        ("POST", "/v1/assignments", _body("p1", "police-9", 0, 1), "body.grid_id", 400),
        ("POST", "/v1/assignments", _body("p1", "community-1", 0, 1), "body.grid_id", 400),
        ("POST", "/v1/assignments", _body("v1", "police-1", 0, 1), "body.grid_id", 400),
        ("POST", "/v1/assignments", _body(long_id, "police-1", 0, 1), "body.unit_id", 400),
        ("POST", "/v1/assignments", _body("p\u00001", "police-1", 0, 1), "body.unit_id", 400),
        ("POST", "/v1/assignments", _body("p1", "Pólice-1", 0, 1), "body.grid_id", 400),
        ("POST", "/v1/assignments", {"unit_id": "p1", "grid_id": "police-1"}, "body.starts_at", 400),
        (
            "POST",
            "/v1/assignments",
            {"unit_id": "p1", "grid_id": "police-1", "shift_id": 424242},
            "body.shift_id",
            400,
        ),
        (
            "POST",
            "/v1/assignments",
            {"unit_id": "p1", "grid_id": "police-1", "shift_id": 2**40},
            "body.shift_id",
            400,
        ),
        (
            "POST",
            "/v1/assignments",
            {"unit_id": "p1", "grid_id": "police-1", "shift_id": -1},
            "body.shift_id",
            400,
        ),
        ("POST", "/v1/assignments", _body("p1", "police-1", 0, 1, replace="yes"), "body.replace", 400),
        ("GET", "/v1/assignments?at=soon", None, "at", 400),
        ("GET", "/v1/assignments?at=" + "9" * 80, None, "at", 400),
        ("GET", "/v1/assignments?unit=" + quote("p\u00001"), None, "unit", 400),
        ("GET", "/v1/assignments?unit=" + long_id, None, "unit", 400),
        ("GET", "/v1/assignments?grid=" + quote("☃"), None, "grid", 400),
        ("GET", f"/v1/shifts?from={_t(H)}&to={_t(0 * H)}", None, "to", 400),
        ("GET", "/v1/shifts?from=tuesday", None, "from", 400),
        ("DELETE", "/v1/assignments/abc", None, "id", 400),
        ("DELETE", "/v1/assignments/" + "9" * 40, None, "id", 400),
        ("DELETE", "/v1/assignments/" + quote("1\u0000"), None, "id", 400),
        ("DELETE", "/v1/assignments/" + quote("١٢"), None, "id", 400),
        ("DELETE", "/v1/assignments/" + long_id, None, "id", 400),
    ]
    for method, path, body, field, status in cases:
        role = "admin"
        response = (
            await api.call(method, path, role=role, json=body)
            if body is not None
            else await api.call(method, path, role=role)
        )
        problem = await response.json(content_type=None)
        assert response.status == status, (path, body, problem)
        assert response.content_type == "application/problem+json"
        names = [p["name"] for p in problem.get("invalid_params", [])]
        assert names and names[0] == field, (path, body, problem)
    headers = {**api.headers("dispatcher"), "Content-Type": "application/json"}
    raw = await api.client.request("POST", "/v1/assignments", headers=headers, data=b"{not json")
    assert raw.status == 400


async def test_the_duty_routes_are_documented_with_their_roles(sqlite_api: LiveApi) -> None:
    doc = await sqlite_api.json("GET", "/openapi.json", role="viewer")
    expected = {
        ("/v1/shifts", "post"),
        ("/v1/shifts", "get"),
        ("/v1/assignments", "post"),
        ("/v1/assignments", "get"),
        ("/v1/assignments/{id}", "delete"),
    }
    assert expected <= {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert "409" in doc["paths"]["/v1/assignments"]["post"]["responses"]
    assert "AssignmentIn" in doc["components"]["schemas"]
