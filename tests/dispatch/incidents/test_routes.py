"""The incident API over HTTP: roles, problem details, Idempotency-Key, the OpenAPI document, the race."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from dispatch.incidents.routes import api
from dispatch.keys import AUDIT_KEY
from store import access
from tests.dispatch.incidents.world import CENTRE, Served, point, served

REPORT = {
    "lon": CENTRE[0],
    "lat": CENTRE[1],
    "category": "theft",
    "priority": "P3",
    "source": "grid_report",
    "description": "bicycle taken",
    "reporter": "grid worker 12",
}


@pytest.fixture
async def http(store_url: str) -> AsyncIterator[Served]:
    async with served(store_url) as s:
        yield s


async def test_report_read_and_list(http: Served) -> None:
    _, created, _ = await http.call("POST", "/v1/incidents", json=REPORT, status=201)
    assert created["state"] == "new"
    _, got, _ = await http.call("GET", f"/v1/incidents/{created['id']}", "viewer", status=200)
    assert got["source"] == "grid_report" and got["history"][0]["actor"].endswith(":dispatcher")
    assert got["intervals"] == {"processing_s": None, "turnout_s": None, "travel_s": None, "total_s": None}
    _, listed, _ = await http.call(
        "GET", "/v1/incidents?state=new&since=2024-05-01T00:00:00Z", "viewer", status=200
    )
    assert [i["id"] for i in listed["incidents"]] == [created["id"]]
    _, empty, _ = await http.call("GET", "/v1/incidents?state=closed", "viewer", status=200)
    assert empty["incidents"] == []


async def test_a_viewer_cannot_change_anything(http: Served) -> None:
    status, problem, _ = await http.call("POST", "/v1/incidents", "viewer", json=REPORT)
    assert status == 403 and problem["status"] == 403


async def test_bad_bodies_name_the_field(http: Served) -> None:
    status, problem, _ = await http.call("POST", "/v1/incidents", json={**REPORT, "priority": "P7"})
    assert status == 400 and problem["invalid_params"][0]["name"] == "body.priority"
    status, problem, _ = await http.call("POST", "/v1/incidents", json={**REPORT, "lat": 123.0})
    assert status == 400 and problem["invalid_params"][0]["name"] == "body.lat"
    status, _, _ = await http.call("GET", "/v1/incidents/nope", "viewer")
    assert status == 404
    for field, value in (("category", "x\u0000y"), ("reporter", "a\u0007"), ("address", "1 Main St\n")):
        status, problem, _ = await http.call("POST", "/v1/incidents", json={**REPORT, field: value})
        assert status == 400 and problem["invalid_params"][0]["name"] == f"body.{field}", problem


async def test_an_illegal_transition_is_a_409_naming_the_state(http: Served) -> None:
    _, created, _ = await http.call("POST", "/v1/incidents", json=REPORT, status=201)
    status, problem, headers = await http.call("POST", f"/v1/incidents/{created['id']}/resolve")
    assert status == 409 and problem["current_state"] == "new" and "new" in problem["detail"]
    assert headers["Content-Type"].startswith("application/problem+json")


async def test_the_same_idempotency_key_has_one_effect(http: Served) -> None:
    key = {"Idempotency-Key": "report-7f3a"}
    first = await http.call("POST", "/v1/incidents", json=REPORT, headers=key, status=201)
    again = await http.call("POST", "/v1/incidents", json=REPORT, headers=key, status=201)
    assert again[1] == first[1] and again[2].get("Idempotent-Replayed") == "true"
    status, problem, _ = await http.call(
        "POST", "/v1/incidents", json={**REPORT, "priority": "P4"}, headers=key
    )
    assert status == 400 and problem["invalid_params"][0]["name"] == "Idempotency-Key"
    # Keys belong to the caller: another token's same key is another request.
    other = await http.call("POST", "/v1/incidents", "admin", json=REPORT, headers=key, status=201)
    assert other[1]["id"] != first[1]["id"]
    _, listed, _ = await http.call("GET", "/v1/incidents", "viewer", status=200)
    assert len(listed["incidents"]) == 2


async def test_an_idempotent_conflict_replays_as_the_same_409(http: Served) -> None:
    _, created, _ = await http.call("POST", "/v1/incidents", json=REPORT, status=201)
    key = {"Idempotency-Key": "resolve-1"}
    first = await http.call("POST", f"/v1/incidents/{created['id']}/resolve", headers=key)
    again = await http.call("POST", f"/v1/incidents/{created['id']}/resolve", headers=key)
    assert first[0] == again[0] == 409 and first[1] == again[1]


async def test_offer_accept_and_an_idempotent_retry_over_http(http: Served) -> None:
    http.world.add_unit("u1", at=point(0, 250))
    http.world.add_unit("u2", at=point(0, 500))
    _, created, _ = await http.call("POST", "/v1/incidents", json=REPORT, status=201)
    base = f"/v1/incidents/{created['id']}"
    _, rec, _ = await http.call("GET", f"{base}/recommendations", "viewer", status=200)
    assert [c["unit_id"] for c in rec["slots"][0]["candidates"]] == ["u1", "u2"]
    assert "nearest available police" in rec["slots"][0]["candidates"][0]["reason"]
    key = {"Idempotency-Key": "offer-1"}
    _, offer, _ = await http.call("POST", f"{base}/offers", headers=key, status=201)
    _, again, _ = await http.call("POST", f"{base}/offers", headers=key, status=201)
    assert offer == again and offer["unit_id"] == "u1"
    _, step, _ = await http.call("POST", f"{base}/offers/{offer['id']}/accept", status=200)
    assert step["state"] == "dispatched" and step["from_state"] == "offered"
    _, got, _ = await http.call("GET", base, "viewer", status=200)
    assert [o["state"] for o in got["offers"]] == ["accepted"] and got["units"][0]["unit_id"] == "u1"
    assert len(got["snapshots"]) == 1
    await http.call("POST", f"{base}/en_route", json={"unit_id": "u1"}, status=200)
    _, step, _ = await http.call("POST", f"{base}/on_scene", status=200)
    assert step["state"] == "on_scene"


async def test_two_dispatchers_race_for_one_unit_over_http(http: Served) -> None:
    http.world.add_unit("only", at=point(0, 100))
    ids = []
    for _ in range(2):
        ids.append((await http.call("POST", "/v1/incidents", json=REPORT, status=201))[1]["id"])
    results = await asyncio.gather(
        *(
            http.call("POST", f"/v1/incidents/{i}/offers", role, json={"unit_id": "only"})
            for i, role in zip(ids, ("dispatcher", "admin"), strict=True)
        )
    )
    assert sorted(r[0] for r in results) == [201, 409]
    loser = next(r for r in results if r[0] == 409)
    assert loser[1]["current_state"] == "offered" and "only" in loser[1]["detail"]


async def test_every_incident_route_is_in_the_openapi_document(http: Served) -> None:
    _, doc, _ = await http.call("GET", "/openapi.json", "viewer", status=200)
    routes = {(r.path, r.method.lower()) for r in api.routes}  # type: ignore[union-attr]
    assert len(routes) == 19  # 17, and priority and merge (amend_routes)
    for path, method in routes:
        operation = doc["paths"][path][method]
        assert operation["responses"] and operation["summary"]
        if method == "post":
            assert any(p["name"] == "Idempotency-Key" for p in operation["parameters"])
    assert doc["paths"]["/v1/incidents/{id}/offers"]["post"]["requestBody"]["required"] is False
    assert doc["paths"]["/v1/incidents"]["post"]["requestBody"]["required"] is True
    assert "IncidentOut" in doc["components"]["schemas"]


async def test_reading_an_incident_or_its_recommendations_is_audited(http: Served) -> None:
    http.world.add_unit("u1", at=point(0, 300))
    _, created, _ = await http.call("POST", "/v1/incidents", json={**REPORT, "priority": "P2"}, status=201)
    incident_id = created["id"]
    await http.call("GET", f"/v1/incidents/{incident_id}", "viewer", status=200)
    http.world.add_unit("u2", at=point(90, 500))
    await http.call("GET", f"/v1/incidents/{incident_id}/recommendations", "viewer", status=200)
    await http.client.app[AUDIT_KEY].flush()
    rows = [
        (e.action, e.subject, e.detail)
        for e in access.read_audit(http.world.engine)
        if e.action in ("read_incident", "incident_recommendations")
    ]
    viewer = access.read_audit(http.world.engine, access.AuditQuery(action="read_incident"))[0].actor
    assert viewer.endswith(":viewer")
    assert rows == [
        ("read_incident", f"incident:{incident_id}", {"units": ["u1"]}),
        ("incident_recommendations", f"incident:{incident_id}", {"units": ["u2"]}),
    ]
