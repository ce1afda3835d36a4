"""Every change is in the audit log before it is made (issue 15, item 9): `change_requested` is durable
before the handler runs, `change_answered` names the status, both carry the request's id; with
`audit_required` and the database refusing, a change is refused with nothing changed; a hostile body
is kept within bounds and does not stop the audit of other requests."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from dispatch.audit_changes import CHANGE_ANSWERED, CHANGE_REQUESTED
from dispatch.keys import AUDIT_KEY
from dispatch.routes import devices
from dispatch.settings import ApiSettings
from store import access, registry
from tests.dispatch.conftest import LiveApi, refuse_audit, refusing_engine, running_api

UNIT = {"id": "u1", "name": "A", "kind": "police"}
CAMERA = {"id": "cam-7", "kind": "body_cam", "credentials": False}


def _changes(api: LiveApi) -> list[access.AuditEntry]:
    return [e for e in access.read_audit(api.engine) if e.action in (CHANGE_REQUESTED, CHANGE_ANSWERED)]


def _store_device_changes_with(monkeypatch: pytest.MonkeyPatch, update: Callable[..., Any]) -> None:
    queries = dataclasses.replace(registry.DEVICE_QUERIES, update=update)
    monkeypatch.setattr(devices, "DEVICES", dataclasses.replace(devices.DEVICES, queries=queries))


def _get(entry: access.AuditEntry, key: str) -> Any:
    return (entry.detail or {}).get(key)


async def test_a_change_is_recorded_with_its_body_and_its_answer(live_api: LiveApi) -> None:
    api = live_api
    await api.json("POST", "/v1/devices", json=CAMERA, status=201)
    await api.json("PATCH", "/v1/devices/cam-7", json={"enabled": False})
    await api.json("PATCH", "/v1/devices/nobody", json={"enabled": False}, status=404)

    entries = _changes(api)
    got = [(e.action, e.subject, (e.detail or {}).get("status")) for e in entries]
    assert got == [
        (CHANGE_REQUESTED, "/v1/devices", None),
        (CHANGE_ANSWERED, "/v1/devices", 201),
        (CHANGE_REQUESTED, "/v1/devices/cam-7", None),
        (CHANGE_ANSWERED, "/v1/devices/cam-7", 200),
        (CHANGE_REQUESTED, "/v1/devices/nobody", None),
        (CHANGE_ANSWERED, "/v1/devices/nobody", 404),
    ]
    patch = entries[2].detail or {}
    assert patch["method"] == "PATCH" and patch["route"] == "/v1/devices/{id}"
    assert patch["body"] == {"enabled": False}
    ids = [(e.detail or {})["request"] for e in entries]
    assert ids[0] == ids[1] and ids[2] == ids[3] and ids[4] == ids[5] and len(set(ids)) == 3
    assert all(e.actor.endswith(":test-admin") for e in entries)
    assert access.verify_audit(api.engine).intact


async def test_the_request_is_durable_before_the_handler_changes_anything(
    live_api: LiveApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = live_api
    await api.json("POST", "/v1/devices", json=CAMERA, status=201)
    seen: list[list[str]] = []

    def observed(engine: Engine, device_id: str, **changes: Any) -> Any:
        # What a kill -9 at this instant would leave: the audit log as the database holds it.
        seen.append([e.subject for e in access.read_audit(engine) if e.action == CHANGE_REQUESTED])
        return registry.update_device(engine, device_id, **changes)

    _store_device_changes_with(monkeypatch, observed)
    await api.json("DELETE", "/v1/devices/cam-7")
    assert seen == [["/v1/devices", "/v1/devices/cam-7"]]


async def test_required_mode_refuses_a_change_before_it_is_made(store_url: str, tmp_path: Path) -> None:
    journal = tmp_path / "audit.jsonl"
    chosen = ApiSettings(audit_journal_path=str(journal), audit_retry_s=0, audit_required=True)
    async with running_api(store_url, settings=chosen) as api:
        audit = api.app[AUDIT_KEY]
        good = refuse_audit(audit, refusing_engine(store_url, tmp_path))
        refused = await api.call("POST", "/v1/units", json=UNIT)
        assert refused.status == 503
        assert "OUTPOST_AUDIT_REQUIRED" in (await refused.json(content_type=None))["detail"]

        refuse_audit(audit, good)
        await api.json("GET", "/v1/units/u1", role="viewer", status=404)  # nothing was made
        await api.json("POST", "/v1/units", json=UNIT, status=201)
        got = [(e.action, _get(e, "answer"), _get(e, "status")) for e in _changes(api)]
        assert got == [
            (CHANGE_REQUESTED, "refused", None),  # shipped from the journal: refused, never answered
            (CHANGE_REQUESTED, None, None),
            (CHANGE_ANSWERED, None, 201),
        ]
        assert access.verify_audit(api.engine).intact


async def test_after_its_request_is_durable_a_change_is_answered_whatever_the_audit(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = tmp_path / "audit.jsonl"
    chosen = ApiSettings(audit_journal_path=str(journal), audit_retry_s=0, audit_required=True)
    async with running_api(store_url, settings=chosen) as api:
        audit = api.app[AUDIT_KEY]
        good = audit._engine

        def database_goes_away(engine: Engine, device_id: str, **changes: Any) -> Any:
            record = registry.update_device(engine, device_id, **changes)
            refuse_audit(audit, refusing_engine(store_url, tmp_path))  # the fault: once the change is made
            return record

        await api.json("POST", "/v1/devices", json=CAMERA, status=201)
        _store_device_changes_with(monkeypatch, database_goes_away)
        await api.json("DELETE", "/v1/devices/cam-7")  # made: answered as made, not 503
        monkeypatch.undo()
        refuse_audit(audit, good)
        await api.json("POST", "/v1/units", json=UNIT, status=201)  # a batch: the journal ships first
        answered = [e for e in _changes(api) if e.subject == "/v1/devices/cam-7"]
        assert [(e.action, _get(e, "status")) for e in answered] == [
            (CHANGE_REQUESTED, None),
            (CHANGE_ANSWERED, 200),
        ]
        assert _get(answered[1], "answer") is None  # journaled, shipped, and not marked refused
        assert (await api.json("GET", "/v1/devices/cam-7", role="viewer"))["enabled"] is False


HOSTILE: dict[str, Any] = {
    "id": "u-x",
    "name": "x\u0001y" + "z" * 1000,
    "kind": "police",
    "secret_code": "hunter2",
    "skills": list(range(500)),
    "deep": [[[[[[[["bottom"]]]]]]]],
    "big": 2**70,
    "fraction": 0.1,
    "\u0002key": 1,
}


async def test_a_hostile_body_is_recorded_within_bounds_and_the_audit_goes_on(live_api: LiveApi) -> None:
    api = live_api
    refused = await api.call("POST", "/v1/units", json=HOSTILE)
    assert refused.status == 400
    not_json = await api.call("POST", "/v1/units", data=b"\xff\x00 not json")
    assert not_json.status == 400
    long_path = "/v1/devices/" + "d" * 5000
    assert (await api.call("PATCH", long_path, json={"enabled": False})).status in (400, 404)
    await api.json("POST", "/v1/units", json=UNIT, status=201)
    await api.json("GET", "/v1/units/u1", role="viewer")

    requested = [e for e in _changes(api) if e.action == CHANGE_REQUESTED]
    body = (requested[0].detail or {})["body"]
    assert body["name"].startswith("x\ufffdyzz") and len(body["name"]) == 256
    assert body["secret_code"] == "[redacted]" and "hunter2" not in str(requested[0].detail)
    assert body["skills"][:3] == [0, 1, 2] and body["skills"][-1] == "[450 more]"
    assert body["big"] == str(2**70) and body["fraction"] == 0.1
    assert "[nested too deep]" in str(body["deep"])
    assert body["\ufffdkey"] == 1
    assert (requested[1].detail or {})["body_bytes"] == 11
    assert len(requested[2].subject) == 512
    assert [e.action for e in access.read_audit(api.engine)][-1] == "read_unit"
    verdict = access.verify_audit(api.engine)
    assert verdict.intact, verdict.reason
