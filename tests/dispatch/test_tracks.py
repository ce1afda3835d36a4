"""Tracks and unit summaries over the real API, on PostgreSQL and SQLite alike: formats that parse, streaming
past one page, simplification, one line through several devices, stops and trips, bad input and roles."""

from __future__ import annotations

import csv
import io
import json
import math
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from dispatch.routes.tracks import _PAGE
from dispatch.settings import ApiSettings
from geo.distance import destination
from schemas.fix import Fix, FixFlag
from store import access
from store.fixes import FixWriter
from tests.dispatch.conftest import START_S, LiveApi, fix, running_api

LON, LAT = -122.4194, 37.7793
T0 = datetime.fromtimestamp(START_S, UTC)
GPX = "{http://www.topografix.com/GPX/1/1}"


def iso(ts_s: float) -> str:
    return datetime.fromtimestamp(ts_s, UTC).isoformat().replace("+00:00", "Z")


def drive(device: str, unit: str, legs: list[tuple[float, float, int]], *, every_s: int = 1) -> list[Fix]:
    """Fixes every `every_s` along legs of (bearing, m/s, seconds), from (LON, LAT) at START_S."""
    lon, lat, t = LON, LAT, START_S
    fixes = [fix(device, unit, lon, lat, t)]
    for bearing, speed, seconds in legs:
        for _ in range(seconds // every_s):
            lon, lat = destination(lon, lat, bearing, speed * every_s)
            t += every_s
            fixes.append(fix(device, unit, lon, lat, t))
    return fixes


async def register(api: LiveApi, unit: str = "u1", devices: tuple[str, ...] = ("d1",)) -> None:
    await api.json("POST", "/v1/units", json={"id": unit, "name": unit, "kind": "police"}, status=201)
    for device in devices:
        await api.json("POST", "/v1/devices", json={"id": device, "kind": "phone"}, status=201)


def window(start_s: float, end_s: float) -> str:
    return f"from={iso(start_s)}&to={iso(end_s)}"


async def test_a_unit_track_in_three_formats_has_every_fix_in_time_order(live_api: LiveApi) -> None:
    api = live_api
    await register(api)
    fixes = drive("d1", "u1", [(90.0, 10.0, 59)])  # 60 fixes, one a second
    fixes[10] = fix("d1", "u1", fixes[10].lon, fixes[10].lat, START_S + 10, flags=int(FixFlag.LOW_ACCURACY))
    FixWriter(api.engine).write([*fixes, fix("d1", "u1", LON, LAT, START_S + 3600)])  # one after the range
    span = window(START_S, START_S + 60)

    doc = await api.json("GET", f"/v1/units/u1/track?{span}", role="viewer")
    assert doc["type"] == "FeatureCollection" and doc["subject"] == "unit:u1"
    assert doc["from"] == iso(START_S) and doc["to"] == iso(START_S + 60)
    features = doc["features"]
    assert [f["properties"]["time"] for f in features] == [
        iso(f.ts.timestamp())[:-1] + ".000Z" for f in fixes
    ]
    assert [f["geometry"]["coordinates"] for f in features] == [[f.lon, f.lat] for f in fixes]
    assert features[10]["properties"]["flags"] == int(FixFlag.LOW_ACCURACY)
    assert {f["properties"]["device_id"] for f in features} == {"d1"}

    gpx = await api.call("GET", f"/v1/units/u1/track?{span}&format=gpx", role="viewer")
    assert gpx.status == 200 and gpx.headers["Content-Type"].startswith("application/gpx+xml")
    root = ET.fromstring(await gpx.read())
    points = root.findall(f"{GPX}trk/{GPX}trkseg/{GPX}trkpt")
    assert [(float(p.get("lon", "")), float(p.get("lat", ""))) for p in points] == [
        (f.lon, f.lat) for f in fixes
    ]
    assert points[0].findtext(f"{GPX}time") == iso(START_S)[:-1] + ".000Z"

    text = await (await api.call("GET", f"/v1/units/u1/track?{span}&format=csv", role="viewer")).text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(fixes) and rows[0]["device_id"] == "d1"
    assert float(rows[59]["lon"]) == fixes[59].lon and rows[10]["flags"] == str(int(FixFlag.LOW_ACCURACY))


async def test_a_long_track_streams_past_one_page_whole_and_in_order(live_api: LiveApi) -> None:
    api = live_api
    await register(api)
    fixes = drive("d1", "u1", [(45.0, 5.0, _PAGE * 2 + 500)])
    FixWriter(api.engine).write(fixes)
    response = await api.call(
        "GET", f"/v1/devices/d1/track?{window(START_S, START_S + 86400)}", role="viewer"
    )
    assert response.status == 200 and response.headers.get("Transfer-Encoding") == "chunked"
    doc = json.loads(await response.read())
    times = [f["properties"]["time"] for f in doc["features"]]
    assert (
        len(times) == len(fixes) == _PAGE * 2 + 501
        and times == sorted(times)
        and len(set(times)) == len(times)
    )


async def test_simplified_tracks_keep_the_corners_with_their_times(live_api: LiveApi) -> None:
    api = live_api
    await register(api)
    fixes = drive("d1", "u1", [(90.0, 10.0, 300), (0.0, 10.0, 300)])
    FixWriter(api.engine).write(fixes)
    span = window(START_S, START_S + 601)
    doc = await api.json("GET", f"/v1/units/u1/track?{span}&simplify_m=2", role="viewer")
    assert doc["simplify_m"] == 2.0
    assert [f["properties"]["time"] for f in doc["features"]] == [
        iso(START_S + s)[:-1] + ".000Z" for s in (0, 300, 600)
    ]


async def test_a_unit_track_is_one_line_through_its_devices(live_api: LiveApi) -> None:
    api = live_api
    await register(api, devices=("cam", "phone"))
    cam = [fix("cam", "u1", LON + i * 1e-4, LAT, START_S + i * 5, accuracy_m=5.0) for i in range(12)]
    phone = [
        fix("phone", "u1", LON + i * 1e-4, LAT + 3e-5, START_S + i * 5 + 1, accuracy_m=15.0)
        for i in range(24)
    ]
    FixWriter(api.engine).write([*cam, *phone])
    span = window(START_S, START_S + 200)
    line = (await api.json("GET", f"/v1/units/u1/track?{span}", role="viewer"))["features"]
    devices = [(f["properties"]["device_id"], f["properties"]["time"]) for f in line]
    assert [d for d, _ in devices[:12]] == ["cam"] * 12  # the sharper cam leads while it reports
    assert {d for d, _ in devices[12:]} == {"phone"}  # the cam fell silent after 55 s: the phone takes over
    both = (await api.json("GET", f"/v1/devices/phone/track?{span}", role="viewer"))["features"]
    assert len(both) == 24  # a device's own track has every fix


async def test_the_summary_of_a_hand_made_hour(live_api: LiveApi) -> None:
    api = live_api
    await register(api)
    # 10 min parked, 5 min east at 10 m/s, 20 min parked, 2 min north; fixes every 5 s; one impossible jump.
    fixes = drive(
        "d1", "u1", [(0.0, 0.0, 600), (90.0, 10.0, 300), (0.0, 0.0, 1200), (0.0, 10.0, 120)], every_s=5
    )
    jump = fixes[50]
    fixes[50] = fix(
        "d1", "u1", jump.lon + 0.3, jump.lat, jump.ts.timestamp(), flags=int(FixFlag.IMPOSSIBLE_SPEED)
    )
    FixWriter(api.engine).write(fixes)
    summary = await api.json("GET", f"/v1/units/u1/summary?{window(START_S, START_S + 3600)}", role="viewer")
    assert summary["unit_id"] == "u1" and summary["fixes"] == len(fixes)
    assert summary["first_fix"] == iso(START_S)[:-1] + ".000Z"
    assert math.isclose(summary["distance_m"], 3000 + 1200, rel_tol=1e-3)  # the jump is not distance driven
    stops = [(s["start"], s["end"]) for s in summary["stops"]]
    # A stay begins at the first fix within 50 m of all that follow (5 s before the car halts at 900 s).
    assert stops == [
        (iso(START_S)[:-1] + ".000Z", iso(START_S + 605)[:-1] + ".000Z"),
        (iso(START_S + 895)[:-1] + ".000Z", iso(START_S + 2100)[:-1] + ".000Z"),
    ]
    assert [round(t["distance_m"]) for t in summary["trips"]] == [2900, 1200]


@pytest.mark.parametrize(
    ("query", "status", "name"),
    [
        ("", 400, "from"),
        (f"from={iso(START_S)}", 400, "to"),
        (f"from={iso(START_S)}&to={iso(START_S - 1)}", 400, "to"),
        ("from=yesterday&to=today", 400, "from"),
        ("from=2024-05-30T17:00:00&to=2024-05-30T18:00:00", 400, "from"),  # no time zone
        (f"from=1e308&to={iso(START_S)}", 400, "from"),
        (f"from=99999999999999&to={iso(START_S)}", 400, "from"),
        (f"from={iso(START_S)}&to=9999-12-31T23:00:00-05:00", 400, "to"),
        (f"from={iso(START_S)}&to={iso(START_S + 3600)}&format=kml", 400, "format"),
        (f"from={iso(START_S)}&to={iso(START_S + 3600)}&simplify_m=-1", 400, "simplify_m"),
        (f"from={iso(START_S)}&to={iso(START_S + 3600)}&simplify_m=nan", 400, "simplify_m"),
        (f"from={iso(START_S)}&to={iso(START_S + 400 * 86400)}", 422, None),
    ],
)
async def test_bad_ranges_and_parameters_are_named(
    sqlite_api: LiveApi, query: str, status: int, name: str | None
) -> None:
    await register(sqlite_api)
    paths = ["/v1/units/u1/track", "/v1/devices/d1/track"]
    if name not in ("format", "simplify_m"):  # a summary has no format and is never simplified
        paths.append("/v1/units/u1/summary")
    for path in paths:
        problem = await sqlite_api.json("GET", f"{path}?{query}", role="viewer", status=status)
        if name is not None:
            assert problem["invalid_params"][0]["name"] == name, problem
        else:
            assert "OUTPOST_TRACK_MAX_RANGE_S" in problem["detail"]


@pytest.mark.parametrize(
    "hostile", ["nobody", "x" * 5000, "a%00b", "%D9%A3", "'; DROP TABLE fixes; --", "..%2F..%2Fetc"]
)
async def test_unknown_and_hostile_ids_are_404_never_500(live_api: LiveApi, hostile: str) -> None:
    span = window(START_S, START_S + 60)
    for path in (
        f"/v1/units/{hostile}/track",
        f"/v1/devices/{hostile}/track",
        f"/v1/units/{hostile}/summary",
    ):
        response = await live_api.call("GET", f"{path}?{span}", role="viewer")
        assert 400 <= response.status < 500, (path, response.status, await response.text())


async def test_tracks_need_a_token_and_every_read_is_audited(live_api: LiveApi) -> None:
    api = live_api
    await register(api)
    FixWriter(api.engine).write(drive("d1", "u1", [(90.0, 10.0, 9)]))
    span = window(START_S, START_S + 60)
    for path in ("/v1/units/u1/track", "/v1/devices/d1/track", "/v1/units/u1/summary"):
        assert (await api.call("GET", f"{path}?{span}", role=None)).status == 401
        for role in ("viewer", "dispatcher", "admin"):
            assert (await api.call("GET", f"{path}?{span}&format=csv", role=role)).status == 200
    await api.flush_audit()
    reads = [(e.action, e.subject) for e in access.read_audit(api.engine) if e.action == "read_track"]
    assert (
        reads
        == [("read_track", "unit:u1")] * 3
        + [("read_track", "device:d1")] * 3
        + [("read_track", "unit:u1")] * 3
    )


async def test_a_simplified_range_over_the_point_limit_is_422_and_the_stream_is_not_limited(
    sqlite_url: str,
) -> None:
    async with running_api(sqlite_url, settings=ApiSettings(track_max_points=50)) as api:
        await register(api)
        FixWriter(api.engine).write(drive("d1", "u1", [(90.0, 10.0, 99)]))
        span = window(START_S, START_S + 200)
        problem = await api.json("GET", f"/v1/units/u1/track?{span}&simplify_m=1", role="viewer", status=422)
        assert "OUTPOST_TRACK_MAX_POINTS" in problem["detail"] and problem["max_points"] == 50
        await api.json("GET", f"/v1/units/u1/summary?{span}", role="viewer", status=422)
        assert len((await api.json("GET", f"/v1/units/u1/track?{span}", role="viewer"))["features"]) == 100
