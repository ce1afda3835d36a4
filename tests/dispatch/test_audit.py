"""Every read of a location is written to the audit log (who, which unit or area, when) before its answer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from store import access
from tests.dispatch.conftest import START_S, LiveApi, fix


async def test_location_reads_are_audited(live_api: LiveApi) -> None:
    api = live_api
    await api.json(
        "POST",
        "/v1/units",
        json={"id": "u1", "name": "A", "kind": "police", "status": "available"},
        status=201,
    )
    api.fleet.apply([fix("d1", "u1", 4.35, 50.85, START_S)])
    api.clock.advance(2)

    await api.json("GET", "/v1/units/u1", role="viewer")
    await api.json("GET", "/v1/units/nearest?lon=4.351&lat=50.851&k=3", role="dispatcher")
    await api.json("GET", "/v1/units?bbox=4.3,50.8,4.4,50.9", role="viewer")
    await api.json("GET", "/v1/units", role="viewer")  # the registry listing shows positions too
    stream = await api.call("GET", "/v1/stream?bbox=4.3,50.8,4.4,50.9", role="viewer")
    assert stream.status == 200
    await stream.content.readuntil(b"\n\n")
    stream.close()
    await api.json("GET", "/v1/devices", role="viewer")  # no location: not audited
    await api.flush_audit()

    entries = access.read_audit(api.engine)
    viewer = f"token:{_token_id(api, 'viewer')}:test-viewer"
    dispatcher = f"token:{_token_id(api, 'dispatcher')}:test-dispatcher"
    admin = f"token:{_token_id(api, 'admin')}:test-admin"
    got = [(e.actor, e.action, e.subject) for e in entries]
    assert got == [
        (admin, "change_requested", "/v1/units"),  # the change is durable before it is made
        (admin, "change_answered", "/v1/units"),
        (viewer, "read_unit", "u1"),
        (dispatcher, "nearest", "point:4.351000,50.851000"),
        (viewer, "units_in_bbox", "bbox:4.300000,50.800000,4.400000,50.900000"),
        (viewer, "list_units", "units:u1"),
        (viewer, "stream", "bbox:4.300000,50.800000,4.400000,50.900000"),
    ]
    assert all(e.at == datetime.fromtimestamp(START_S + 2, UTC) for e in entries[2:])
    assert entries[3].detail == {"k": 3, "units": ["u1"]}
    served = await api.json("GET", "/v1/audit?action=nearest")
    assert [e["subject"] for e in served["entries"]] == ["point:4.351000,50.851000"]


async def test_an_answer_leaves_once_its_record_is_stored(live_api: LiveApi) -> None:
    api = live_api
    await api.json("POST", "/v1/units", json={"id": "u1", "name": "A", "kind": "police"}, status=201)
    await api.json("GET", "/v1/units/u1", role="viewer")
    created = ["change_requested", "change_answered"]
    assert [e.action for e in access.read_audit(api.engine)] == [*created, "read_unit"]  # no flush needed
    stream = await api.call("GET", "/v1/stream", role="viewer")
    assert stream.status == 200  # the headers left: the subscription's record was committed before them
    assert [e.action for e in access.read_audit(api.engine)] == [*created, "read_unit", "stream"]
    stream.close()


async def test_200_concurrent_reads_are_200_chained_records(live_api: LiveApi) -> None:
    api = live_api
    await api.json("POST", "/v1/units", json={"id": "u1", "name": "A", "kind": "police"}, status=201)
    api.fleet.apply([fix("d1", "u1", 4.35, 50.85, START_S)])

    async def read(i: int) -> int:
        response = await api.call("GET", f"/v1/units/nearest?lon={4 + i / 1000:.3f}&lat=50.85", "dispatcher")
        await response.read()
        return response.status

    assert await asyncio.gather(*(read(i) for i in range(200))) == [200] * 200
    entries = access.read_audit(api.engine)  # no flush: every answer waited for its record
    wanted = sorted(f"point:{4 + i / 1000:.6f},50.850000" for i in range(200))
    assert sorted(e.subject for e in entries if e.action == "nearest") == wanted
    verdict = access.verify_audit(api.engine)
    assert verdict.intact and verdict.records == 2 + 200  # the unit's creation, requested and answered


def _token_id(api: LiveApi, role: str) -> int:
    found = access.find_token(api.engine, api.tokens[role])
    assert found is not None
    return found.id
