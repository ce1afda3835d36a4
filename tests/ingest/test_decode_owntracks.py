"""OwnTracks over MQTT and in HTTP mode, from captured app payloads (see payloads/README.md)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pytest

from ingest.decode import Decoded, decode_mqtt, decode_owntracks, decode_owntracks_http
from tests.ingest.payloads import check_invariants, read

TOPIC = "owntracks/jane/phone"


def reasons(out: Decoded) -> list[str]:
    return [reason for reasons, _ in out.rejects for reason in reasons]


def test_android_location_is_converted_to_si_units_and_utc() -> None:
    out = decode_mqtt(TOPIC, read("owntracks/location_android.json"))
    (c,) = out.candidates
    check_invariants(c)
    assert c.device_id == "jane/phone"  # user/device: one-to-one with the topic
    assert c.ts == datetime(2021, 1, 16, 12, 10, 26, tzinfo=UTC)  # tst 1610799026, not created_at
    assert (c.lon, c.lat, c.accuracy_m, c.battery_pct) == (-4.0, 51.2, 20.0, 100.0)
    assert c.speed_mps == pytest.approx(7 / 3.6)  # vel is km/h
    assert (c.heading_deg, c.altitude_m, c.seq, c.mock) == (None, None, None, False)


def test_ios_extended_location_keeps_course_altitude_and_battery() -> None:
    (c,) = decode_owntracks("jane", "iphone", read("owntracks/location_ios_http.json")).candidates
    check_invariants(c)
    assert (c.heading_deg, c.altitude_m, c.battery_pct, c.accuracy_m) == (271.0, 167.0, 41.0, 5.0)
    assert c.speed_mps == pytest.approx(61 / 3.6)


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("owntracks/transition.json", "owntracks:_type=transition"),
        ("owntracks/lwt.json", "owntracks:_type=lwt"),
        ("owntracks/waypoint.json", "owntracks:_type=waypoint"),
        ("owntracks/waypoints.json", "owntracks:_type=waypoints"),
        ("owntracks/card.json", "owntracks:_type=card"),
        ("owntracks/cmd.json", "owntracks:_type=cmd"),
    ],
)
def test_other_types_are_counted_and_ignored_never_errors(name: str, label: str) -> None:
    out = decode_mqtt(TOPIC, read(name))
    assert (out.candidates, out.rejects, out.ignored) == ([], [], label)


def test_unknown_types_share_one_label() -> None:
    assert decode_mqtt(TOPIC, b'{"_type":"x-' + b"a" * 100 + b'"}').ignored == "owntracks:_type=other"
    assert decode_mqtt(TOPIC, b'{"_type":{"nested":1}}').ignored == "owntracks:_type=other"


@pytest.mark.parametrize(
    ("topic", "label"),
    [
        ("owntracks/jane/phone/event", "owntracks:subtopic=event"),
        ("owntracks/jane/phone/info", "owntracks:subtopic=info"),
        ("owntracks/jane/phone/whatever/else", "owntracks:subtopic=other"),
    ],
)
def test_subtopics_carry_no_fix_of_the_device(topic: str, label: str) -> None:
    out = decode_mqtt(topic, read("owntracks/transition.json"))
    assert (out.candidates, out.rejects, out.ignored) == ([], [], label)


@pytest.mark.parametrize("topic", ["owntracks/jane", "owntracks//phone", "owntracks/jane/"])
def test_incomplete_owntracks_topics_are_unknown(topic: str) -> None:
    assert decode_mqtt(topic, read("owntracks/location_android.json")).rejects == [(("unknown_topic",), None)]


def test_numbers_sent_as_strings_by_old_apps_are_parsed() -> None:
    payload = (
        b'{"_type":"location","lat":"51.06263","lon":"13.60279","tst":"1440405601","acc":"10","batt":"99"}'
    )
    (c,) = decode_mqtt(TOPIC, payload).candidates
    check_invariants(c)
    assert (c.lat, c.lon, c.accuracy_m, c.battery_pct) == (51.06263, 13.60279, 10.0, 99.0)


def test_non_finite_numbers_arrive_as_strings_and_reach_validation_or_are_named() -> None:
    (c,) = decode_mqtt(TOPIC, b'{"_type":"location","lat":"NaN","lon":4.8,"tst":1440405601}').candidates
    assert math.isnan(c.lat)  # the validator rejects it as non_finite
    out = decode_mqtt(TOPIC, b'{"_type":"location","lat":52.3,"lon":4.8,"tst":"inf"}')
    assert out.rejects == [(("non_finite",), "jane/phone")]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"_type":"location","lon":4.8,"tst":1440405601}', "missing_field"),
        (b'{"_type":"location","lat":null,"lon":4.8,"tst":1440405601}', "missing_field"),
        (b'{"lat":52.3,"lon":4.8,"tst":1440405601}', "missing_field"),
        (b'{"_type":"location","lat":"north","lon":4.8,"tst":1440405601}', "invalid_schema"),
        (b'{"_type":"location","lat":true,"lon":4.8,"tst":1440405601}', "invalid_schema"),
        (b'{"_type":"location","lat":[52.3],"lon":4.8,"tst":1440405601}', "invalid_schema"),
        (b'{"_type":"location","lat":52.3,"lon":4.8,"tst":1e12}', "invalid_timestamp"),
        (b'{"_type":"location","lat":52.3,"lon":4.8,"tst":1440405601,"batt":1e999}', "non_finite"),
        (b'{"_type":"location","lat":52.3,"lon":4.8,', "invalid_json"),
        (b'["location"]', "invalid_schema"),
        (b'{"_type":"location","desc":"\xc3\x28"}', "invalid_utf8"),
    ],
)
def test_each_bad_payload_class_has_its_named_reason(payload: bytes, reason: str) -> None:
    out = decode_mqtt(TOPIC, payload)
    assert out.candidates == []
    assert reasons(out) == [reason], out.details


def test_http_identity_comes_from_the_x_limit_headers() -> None:
    (c,) = decode_owntracks_http("jane", "phone", read("owntracks/location_tid_only.json")).candidates
    check_invariants(c)
    assert c.device_id == "jane/phone"
    assert c.ts == datetime(2017, 6, 14, 21, 40, 56, tzinfo=UTC)


def test_http_identity_falls_back_to_the_topic_field() -> None:
    (c,) = decode_owntracks_http(None, None, read("owntracks/location_ios_http.json")).candidates
    assert c.device_id == "jane/iphone"


def test_http_without_any_identity_is_a_missing_field() -> None:
    out = decode_owntracks_http(None, None, read("owntracks/location_tid_only.json"))
    assert out.rejects == [(("missing_field",), None)]
    assert "X-Limit-U" in out.details[0]  # `tid` is a display label, never an identity


def test_http_headers_and_topic_field_naming_different_devices_is_a_mismatch() -> None:
    out = decode_owntracks_http("jane", "phone", read("owntracks/location_ios_http.json"))
    assert out.rejects == [(("identity_mismatch",), "jane/phone")]


def test_http_array_of_recorder_locations() -> None:
    (c,) = decode_owntracks_http(None, None, read("owntracks/recorder_last.json")).candidates
    check_invariants(c)
    assert (c.device_id, c.ts) == ("demo/iphone", datetime(2015, 8, 24, 8, 40, 1, tzinfo=UTC))
    assert c.speed_mps == pytest.approx(5.0)  # 18 km/h


def test_the_documented_payload_without_tst_is_a_missing_field() -> None:
    out = decode_owntracks_http(None, None, read("owntracks/location_without_tst.json"))
    assert out.rejects == [(("missing_field",), "jane/phone")]


def test_a_mixed_http_queue_flush_keeps_locations_and_ignores_the_rest() -> None:
    body = json.dumps(
        [
            json.loads(read("owntracks/transition.json")),
            json.loads(read("owntracks/location_android.json")),
            "garbage",
            json.loads(read("owntracks/lwt.json")),
        ]
    ).encode()
    out = decode_owntracks_http("jane", "phone", body)
    assert len(out.candidates) == 1
    assert out.ignored == "owntracks:_type=transition"
    assert reasons(out) == ["invalid_schema"]


def test_http_headers_with_a_slash_cannot_forge_another_identity() -> None:
    out = decode_owntracks_http("jane/phone", "x", read("owntracks/location_android.json"))
    assert out.rejects == [(("invalid_device_id",), None)]
