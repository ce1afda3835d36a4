"""Priority changes and merges over HTTP, on both stores: dispatchers only, problems naming the reason or
the field, the audit trail, the OpenAPI entries."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.dispatch.incidents.test_routes import REPORT
from tests.dispatch.incidents.world import Served, served


@pytest.fixture
async def http(store_url: str) -> AsyncIterator[Served]:
    async with served(store_url) as s:
        yield s


async def _report(http: Served, **extra: str) -> str:
    _, created, _ = await http.call("POST", "/v1/incidents", json={**REPORT, **extra}, status=201)
    return str(created["id"])


async def test_a_dispatcher_changes_the_priority_and_it_is_audited(http: Served) -> None:
    incident_id = await _report(http)
    path = f"/v1/incidents/{incident_id}/priority"
    status, _, _ = await http.call("POST", path, "viewer", json={"priority": "P2"})
    assert status == 403
    status, problem, _ = await http.call("POST", path, json={"priority": "P9"})
    assert status == 400 and problem["invalid_params"][0]["name"] == "body.priority"
    _, step, _ = await http.call("POST", path, json={"priority": "P4", "reason": "minor"}, status=200)
    assert step["event"] == "change_priority" and step["state"] == "new"
    _, got, _ = await http.call("GET", f"/v1/incidents/{incident_id}", "viewer", status=200)
    assert got["priority"] == "P4" and got["history"][-1]["actor"].endswith(":dispatcher")
    status, problem, _ = await http.call("POST", path, json={"priority": "P4"})
    assert status == 409 and "already P4" in problem["detail"]
    await http.call("POST", f"/v1/incidents/{incident_id}/cancel", status=200)
    status, problem, _ = await http.call("POST", path, json={"priority": "P1"})
    assert status == 409 and problem["current_state"] == "cancelled"
    status, _, _ = await http.call("POST", "/v1/incidents/nope/priority", json={"priority": "P1"})
    assert status == 404


async def test_a_duplicate_is_merged_and_every_refusal_says_why(http: Served) -> None:
    survivor = await _report(http, reporter="first caller")
    duplicate = await _report(http, reporter="second caller")
    merge = f"/v1/incidents/{duplicate}/merge"
    status, _, _ = await http.call("POST", merge, "viewer", json={"into": survivor})
    assert status == 403
    status, problem, _ = await http.call("POST", merge, json={"into": "nobody"})
    assert status == 400 and problem["invalid_params"][0]["name"] == "body.into"
    _, step, _ = await http.call("POST", merge, json={"into": survivor, "reason": "same call"}, status=200)
    assert (step["event"], step["state"]) == ("merge", "merged")
    _, got, _ = await http.call("GET", f"/v1/incidents/{survivor}", "viewer", status=200)
    assert [c["reporter"] for c in got["calls"]] == ["first caller", "second caller"]
    assert got["history"][-1]["event"] == "absorb"
    _, listed, _ = await http.call("GET", "/v1/incidents?state=merged", "viewer", status=200)
    assert [(i["id"], i["merged_into"]) for i in listed["incidents"]] == [(duplicate, survivor)]
    for path, body, words in (
        (merge, {"into": survivor}, "already merged"),
        (f"/v1/incidents/{survivor}/merge", {"into": survivor}, "into itself"),
        (f"/v1/incidents/{survivor}/merge", {"into": duplicate}, "itself merged"),
    ):
        status, problem, headers = await http.call("POST", path, json=body)
        assert status == 409 and words in problem["detail"], problem
        assert headers["Content-Type"].startswith("application/problem+json")


async def test_the_openapi_document_lists_priority_and_merge(http: Served) -> None:
    _, doc, _ = await http.call("GET", "/openapi.json", "viewer", status=200)
    for path, schema in (
        ("/v1/incidents/{id}/priority", "PriorityIn"),
        ("/v1/incidents/{id}/merge", "MergeIn"),
    ):
        op = doc["paths"][path]["post"]
        assert {"400", "404", "409", "403"} <= set(op["responses"])
        assert op["requestBody"]["required"] is True
        assert schema in str(op["requestBody"])
