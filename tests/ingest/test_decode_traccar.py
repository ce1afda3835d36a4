"""OsmAnd / Traccar Client over HTTP: query strings and JSON bodies from Traccar's own decoder tests."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pytest

from ingest.decode import Decoded, decode_traccar_http
from tests.ingest.payloads import check_invariants, names, osmand_queries, read

ARRIVAL = datetime(2025, 6, 15, 13, 45, 30, tzinfo=UTC)
JSON = "application/json; charset=utf-8"
KNOT_MPS = 1852 / 3600


def reasons(out: Decoded) -> list[str]:
    return [reason for reasons, _ in out.rejects for reason in reasons]


@pytest.mark.parametrize("name", names("traccar"))
def test_every_traccar_client_body_decodes(name: str) -> None:
    out = decode_traccar_http({}, read(name), "application/json")
    assert out.rejects == []
    (c,) = out.candidates
    check_invariants(c)


def test_client9_android_body() -> None:
    (c,) = decode_traccar_http({}, read("traccar/client9_android.json"), JSON).candidates
    assert c.device_id == "48241179"
    assert c.ts == datetime(2025, 6, 15, 13, 45, 12, 862000, tzinfo=UTC)
    assert (c.lat, c.lon, c.accuracy_m, c.speed_mps, c.altitude_m) == (37.4219983, -122.084, 5.0, 0.0, 5.0)
    assert c.heading_deg is None  # -1: unknown
    assert c.battery_pct == 100.0  # level 1 of 0..1
    assert c.mock is False


def test_client9_ios_mock_flag_and_unknowns() -> None:
    (c,) = decode_traccar_http({}, read("traccar/client9_ios_mock.json"), JSON).candidates
    assert c.mock is True
    assert (c.speed_mps, c.heading_deg, c.battery_pct) == (None, None, None)  # all -1
    assert c.lat == pytest.approx(37.785834)


def test_client9_speed_is_already_metres_per_second() -> None:
    (c,) = decode_traccar_http({}, read("traccar/client9_moving.json"), JSON).candidates
    assert (c.speed_mps, c.heading_deg, c.battery_pct, c.accuracy_m) == (18.67, 63.0, 79.0, 3.8)


def test_json_is_recognised_without_a_content_type() -> None:
    assert len(decode_traccar_http({}, read("traccar/client9_moving.json"), None).candidates) == 1


def test_osmand_query_strings_from_traccars_tests() -> None:
    outs = [decode_traccar_http(q, b"", None, received_at=ARRIVAL) for q in osmand_queries()]
    assert reasons(outs[0]) == ["missing_field"]  # cell towers only: Traccar uses the last location
    assert reasons(outs[1]) == ["missing_field"]  # no id
    ok = [out.candidates[0] for out in outs[2:]]
    for c in ok:
        check_invariants(c)
    assert ok[0].ts == datetime(2016, 1, 27, 18, 55, 47, tzinfo=UTC)  # ISO 8601
    assert ok[1].ts == datetime(2015, 9, 12, 14, 38, 6, 579000, tzinfo=UTC)  # epoch ms
    assert ok[2].ts == datetime(2014, 6, 4, 9, 10, 11, tzinfo=UTC)  # "yyyy-MM-dd HH:mm:ss", read as UTC
    assert ok[3].ts == datetime(2013, 8, 22, 13, 14, 27, tzinfo=UTC)  # epoch s
    assert ok[5].device_id == "123456" and ok[5].ts == ARRIVAL  # deviceid=, no timestamp: arrival time
    assert ok[6].battery_pct == 87.0 and ok[6].altitude_m == 350.059479
    assert (ok[7].lat, ok[7].lon) == (60.0, 30.0)  # location=lat,lon
    assert ok[8].speed_mps == pytest.approx(40 * KNOT_MPS)  # OsmAnd speed is in knots
    assert ok[8].heading_deg == pytest.approx(7.19889788244)


def test_a_form_body_is_read_when_the_query_is_empty() -> None:
    body = b"id=353861053849681&lat=49.60688&lon=6.15788&timestamp=1377177267&speed=10&batt=55"
    (c,) = decode_traccar_http({}, body, "application/x-www-form-urlencoded").candidates
    assert (c.device_id, c.lat, c.battery_pct) == ("353861053849681", 49.60688, 55.0)
    assert c.speed_mps == pytest.approx(10 * KNOT_MPS)


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"id": "7", "lat": "60.0", "lon": "30.0", "valid": "false"}, "invalid_fix"),
        ({"id": "7", "lat": "sixty", "lon": "30.0"}, "invalid_schema"),
        ({"id": "7", "location": "60.0;30.0"}, "invalid_schema"),
        ({"id": "7", "lat": "60.0"}, "missing_field"),
        ({"id": "7", "lat": "60", "lon": "30", "timestamp": "yesterday"}, "invalid_timestamp"),
        ({"id": "7", "lat": "60", "lon": "30", "timestamp": "NaN"}, "non_finite"),
        ({"id": "7", "lat": "60", "lon": "30", "timestamp": "99999999999999999999999"}, "invalid_timestamp"),
        ({"id": "\x00", "lat": "60", "lon": "30"}, "invalid_device_id"),
        ({"id": "x" * 129, "lat": "60", "lon": "30"}, "invalid_device_id"),
        ({"id": "cam#1", "lat": "60", "lon": "30"}, "invalid_device_id"),  # no topic can carry it
        ({"id": "cam+1", "lat": "60", "lon": "30"}, "invalid_device_id"),
    ],
)
def test_each_bad_query_has_its_named_reason(query: dict[str, str], reason: str) -> None:
    out = decode_traccar_http(query, b"", None, received_at=ARRIVAL)
    assert out.candidates == []
    assert reasons(out) == [reason], out.details


def test_nan_in_a_query_reaches_validation() -> None:
    (c,) = decode_traccar_http(
        {"id": "7", "lat": "nan", "lon": "30"}, b"", None, received_at=ARRIVAL
    ).candidates
    assert math.isnan(c.lat)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            b'{"location":{"timestamp":"2025-06-15T13:45:12Z","coords":{"latitude":1,"longitude":2}}}',
            "missing_field",
        ),
        (b'{"device_id":"9","location":{"timestamp":"2025-06-15T13:45:12Z"}}', "missing_field"),
        (
            b'{"device_id":"9","location":{"timestamp":"noon","coords":{"latitude":1,"longitude":2}}}',
            "invalid_schema",
        ),
        (
            b'{"device_id":"9","location":{"timestamp":"2025-06-15T13:45:12Z","coords":{"latitude":"1","longitude":2}}}',
            "invalid_schema",
        ),
        (b'{"device_id":"9","location":', "invalid_json"),
        (b'{"device_id":"\xff","location":{}}', "invalid_utf8"),
        (b'{"device_id":"","location":{}}', "invalid_device_id"),
        (b"[1,2,3]", "invalid_schema"),
    ],
)
def test_each_bad_json_body_has_its_named_reason(body: bytes, reason: str) -> None:
    out = decode_traccar_http({}, body, "application/json")
    assert out.candidates == []
    assert reasons(out) == [reason], out.details


def test_a_batch_of_locations_keeps_the_good_ones() -> None:
    good = json.loads(read("traccar/client9_moving.json"))["location"]
    body = json.dumps({"device_id": "8737767034", "location": [good, {"timestamp": "x"}, good]}).encode()
    out = decode_traccar_http({}, body, JSON)
    assert len(out.candidates) == 2
    assert out.rejects == [(("invalid_schema",), "8737767034")]


def test_numeric_device_ids_are_accepted_as_text() -> None:
    body = read("traccar/client9_moving.json").replace(b'"8737767034"', b"8737767034")
    assert decode_traccar_http({}, body, JSON).candidates[0].device_id == "8737767034"


def test_bodies_over_the_size_limit_are_too_large() -> None:
    body = read("traccar/client9_moving.json")
    out = decode_traccar_http({}, body, JSON, max_payload_bytes=100)
    assert out.rejects == [(("too_large",), None)]
