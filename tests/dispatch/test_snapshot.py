"""The fleet snapshot and playback over the real API: the same answers from PostgreSQL and SQLite, each
checked against what the fixture says by hand (last fix at or before T within the look-back, the status then
from the status history), the route not taken for a unit, bad input named, every read audited."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from dispatch.settings import ApiSettings
from store import access, registry
from store.fixes import FixWriter
from tests.dispatch.conftest import START_S, LiveApi, fix, running_api
from tests.support.problems import assert_problem

LON, LAT = -122.4194, 37.7793


def iso(ts_s: float) -> str:
    return datetime.fromtimestamp(ts_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _at(ts_s: float) -> datetime:
    return datetime.fromtimestamp(ts_s, UTC)


async def _seed(api: LiveApi) -> None:
    """u1: two devices; u2: one fix long ago; u3: no fix. Statuses changed at +100 s and +200 s."""
    for unit in ("u1", "u2", "u3"):
        await api.json(
            "POST", "/v1/units", json={"id": unit, "name": f"Unit {unit}", "kind": "police"}, status=201
        )
    fixes = [fix("d1", "u1", LON + i * 1e-4, LAT, START_S + i * 10) for i in range(30)]  # 0 … 290 s
    fixes.append(fix("d2", "u1", LON, LAT + 1e-3, START_S + 45))  # the second device, between d1's
    fixes.append(fix("d2", "u1", LON, LAT + 2e-3, START_S + 50))  # same instant as d1's: d2 wins the tie
    fixes.append(fix("d9", "u2", LON - 0.01, LAT, START_S - 3600))  # older than the look-back from START_S
    FixWriter(api.engine).write(fixes)
    for unit, status, offset in (("u1", "available", 100), ("u1", "en_route", 200), ("u2", "available", 150)):
        registry.change_unit_status(api.engine, unit, status, actor="test", now=_at(START_S + offset))


QUERIES = [
    f"at={iso(START_S + 55)}",
    f"at={iso(START_S + 50)}",
    f"at={iso(START_S + 150)}",
    f"at={iso(START_S + 250)}",
    f"at={iso(START_S - 1)}",
    f"at={iso(START_S + 290 + 900)}",
    f"at={iso(START_S + 291 + 900)}",
    f"from={iso(START_S)}&to={iso(START_S + 300)}&step_s=100",
    f"from={iso(START_S + 10)}&to={iso(START_S + 10)}",
]


async def _answers(url: str) -> list[Any]:
    async with running_api(url) as api:
        await _seed(api)
        return [await api.json("GET", f"/v1/units/snapshot?{q}", role="viewer") for q in QUERIES]


async def test_both_stores_answer_alike_and_as_computed_by_hand(pg_url: str, sqlite_url: str) -> None:
    on_pg, on_sqlite = await _answers(pg_url), await _answers(sqlite_url)
    assert on_pg == on_sqlite
    at55, at50, at150, at250, before, last, past, playback, one = on_pg
    assert at55["at"] == iso(START_S + 55) and [u["id"] for u in at55["units"]] == ["u1", "u2", "u3"]
    u1, u2, u3 = at55["units"]
    assert u1 == {
        "id": "u1",
        "name": "Unit u1",
        "kind": "police",
        "status": "off_duty",  # before its first change, it was in that change's from_status
        # d1 and d2 both have a fix at +50 s: the greater device id, on both stores.
        "lon": LON,
        "lat": LAT + 2e-3,
        "ts": iso(START_S + 50),
        "heading": None,
        "speed_mps": None,
        "device_id": "d2",
        "flags": 0,
    }
    assert at50["units"][0] == u1  # at T itself counts
    assert u2["lon"] is None and u2["ts"] is None and u2["status"] == "off_duty"  # its fix: over an hour old
    assert u3 == {**u3, "lon": None, "lat": None, "ts": None, "device_id": None}
    assert [u["status"] for u in at150["units"]] == ["available", "available", "off_duty"]
    assert [u["status"] for u in at250["units"]] == ["en_route", "available", "off_duty"]
    assert at250["units"][0]["ts"] == iso(START_S + 250) and at250["units"][0]["device_id"] == "d1"
    assert before["units"][0]["ts"] is None and before["units"][1]["ts"] is None
    assert last["units"][0]["ts"] == iso(START_S + 290)  # exactly the look-back old: still shown
    assert past["units"][0]["ts"] is None  # a second more: gone
    assert playback["from"] == iso(START_S) and playback["to"] == iso(START_S + 300)
    assert playback["step_s"] == 100
    assert [f["at"] for f in playback["frames"]] == [iso(START_S + s) for s in (0, 100, 200, 300)]
    assert [f["units"][0]["ts"] for f in playback["frames"]] == [iso(START_S + s) for s in (0, 100, 200, 290)]
    assert (
        playback["frames"][1]["units"][0]["status"] == "available"
    )  # the change at +100 s applies at +100 s
    assert playback["frames"][1] == {"at": iso(START_S + 100), "units": at_units(on_pg, START_S + 100)}
    assert [f["at"] for f in one["frames"]] == [iso(START_S + 10)] and one["step_s"] == 60


def at_units(answers: list[Any], ts_s: float) -> list[Any]:
    """The units of the playback's frame at `ts_s` (a frame is the snapshot at its instant)."""
    frame = next(f for f in answers[7]["frames"] if f["at"] == iso(ts_s))
    return list(frame["units"])


async def test_a_frame_is_the_snapshot_at_its_instant(sqlite_api: LiveApi) -> None:
    api = sqlite_api
    await _seed(api)
    playback = await api.json(
        "GET", f"/v1/units/snapshot?from={iso(START_S)}&to={iso(START_S + 300)}&step_s=37", role="viewer"
    )
    for frame in playback["frames"]:
        alone = await api.json("GET", f"/v1/units/snapshot?at={frame['at']}", role="viewer")
        assert alone == frame


async def test_the_snapshot_is_not_taken_for_a_unit_and_is_audited_and_not_cached(
    sqlite_api: LiveApi,
) -> None:
    api = sqlite_api
    await _seed(api)
    response = await api.call("GET", f"/v1/units/snapshot?at={iso(START_S)}", role="viewer")
    assert response.status == 200 and response.headers["Cache-Control"] == "no-store"
    assert "units" in await response.json()
    await api.json("GET", "/v1/units/u1", role="viewer")  # the unit route still answers units
    await api.json(
        "GET", f"/v1/units/snapshot?from={iso(START_S)}&to={iso(START_S + 60)}&step_s=30", role="viewer"
    )
    assert (await api.call("GET", f"/v1/units/snapshot?at={iso(START_S)}", role=None)).status == 401
    await api.flush_audit()
    reads = [(e.action, e.subject) for e in access.read_audit(api.engine) if "snapshot" in e.subject]
    assert reads == [("read_snapshot", "units:snapshot"), ("read_playback", "units:snapshot")]


BAD_INPUT = [
    "400 at ",
    "400 at at=yesterday",
    "400 at at=2024-05-30T17:00:00",
    f"400 at at={iso(START_S)}&from={iso(START_S)}",
    f"400 to from={iso(START_S)}",
    f"400 at to={iso(START_S)}",
    f"400 to from={iso(START_S + 10)}&to={iso(START_S)}",
    f"400 step_s from={iso(START_S)}&to={iso(START_S + 60)}&step_s=0",
    f"400 step_s from={iso(START_S)}&to={iso(START_S + 60)}&step_s=abc",
    f"422 step_s from={iso(START_S)}&to={iso(START_S + 86400)}&step_s=1",  # 86,401 frames
    f"422 step_s from={iso(START_S)}&to={iso(START_S + 1500)}&step_s=1",  # 1,501 × 3 units
]  # "status parameter query": the answer names the parameter


@pytest.mark.parametrize("case", BAD_INPUT)
async def test_bad_input_is_a_problem_naming_the_parameter(sqlite_url: str, case: str) -> None:
    status, name, query = case.split(" ", 2)
    async with running_api(sqlite_url, settings=ApiSettings(playback_max_positions=4000)) as api:
        await _seed(api)
        response = await api.call("GET", f"/v1/units/snapshot?{query}", role="viewer")
        await assert_problem(response, int(status), name)


async def test_each_unit_gets_its_own_last_fix(store_url: str) -> None:
    """Two units with fixes in the window each get their own (a subquery once took the newest of any unit)."""
    async with running_api(store_url) as api:
        for unit in ("u1", "u2"):
            body = {"id": unit, "name": unit, "kind": "police"}
            await api.json("POST", "/v1/units", json=body, status=201)
        fixes = [fix("d1", "u1", LON, LAT, START_S + 10), fix("d2", "u2", LON + 0.01, LAT, START_S + 20)]
        FixWriter(api.engine).write(fixes)
        got = await api.json("GET", f"/v1/units/snapshot?at={iso(START_S + 30)}", role="viewer")
    assert [(u["id"], u["device_id"], u["lon"], u["ts"]) for u in got["units"]] == [
        ("u1", "d1", LON, iso(START_S + 10)),
        ("u2", "d2", LON + 0.01, iso(START_S + 20)),
    ]
