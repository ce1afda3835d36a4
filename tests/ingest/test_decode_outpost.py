"""Outpost's own MQTT format: fixtures, every bad payload class and its reason, identity, the JSON Schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from ingest.decode import Decoded, decode_mqtt, decode_outpost
from ingest.decode.outpost import OwnFix
from tests.ingest.payloads import check_invariants, names, read

TOPIC = "outpost/v1/devices/bodycam-0042/fix"
SCHEMA = Path(__file__).parents[2] / "schemas" / "json" / "fix.schema.json"


def reasons(out: Decoded) -> list[str]:
    return [reason for reasons, _ in out.rejects for reason in reasons]


@pytest.mark.parametrize("name", names("outpost"))
def test_every_fixture_decodes_cleanly(name: str) -> None:
    out = decode_mqtt(TOPIC, read(name))
    assert out.rejects == [] and out.ignored is None
    assert out.candidates
    for c in out.candidates:
        check_invariants(c)
        assert c.device_id == "bodycam-0042"


def test_rfc3339_and_epoch_ms_name_the_same_instant_in_utc() -> None:
    (a,) = decode_mqtt(TOPIC, read("outpost/fix_rfc3339.json")).candidates
    (b,) = decode_mqtt(TOPIC, read("outpost/fix_epoch_ms.json")).candidates
    assert a.ts == b.ts == datetime(2025, 3, 14, 8, 26, 53, 589000, tzinfo=UTC)
    assert (a.lon, a.lat, a.accuracy_m, a.altitude_m, a.speed_mps) == (4.895168, 52.370216, 4.8, 2.1, 1.4)
    assert (a.heading_deg, a.battery_pct, a.seq, a.mock) == (87.0, 76.0, 1042, False)


def test_an_offline_buffer_flush_yields_every_fix_in_order() -> None:
    out = decode_mqtt(TOPIC, read("outpost/buffer_flush.json"))
    assert [c.seq for c in out.candidates] == [1001, 1002, 1003, 1004]
    assert out.candidates[3].heading_deg == 42.5


def test_mock_flag_and_matching_device_id_are_accepted() -> None:
    (c,) = decode_mqtt(TOPIC, read("outpost/fix_mock_named.json")).candidates
    assert c.mock is True


def test_a_payload_naming_another_device_is_an_identity_mismatch() -> None:
    out = decode_mqtt(TOPIC, b'{"ts":1741940813589,"lat":52.37,"lon":4.89,"device_id":"bodycam-0099"}')
    assert out.candidates == []
    assert out.rejects == [(("identity_mismatch",), "bodycam-0042")]
    assert "bodycam-0099" in out.details[0]


def test_bad_elements_of_an_array_do_not_lose_the_good_ones() -> None:
    payload = json.dumps(
        [
            {"ts": 1741940700000, "lat": 52.3699, "lon": 4.8948, "seq": 1},
            {"ts": 1741940705000, "lat": "52.3699", "lon": 4.8948, "seq": 2},
            {"ts": 1741940710000, "lon": 4.8948, "seq": 3},
            {"ts": 1741940715000, "lat": 52.3699, "lon": 4.8948, "seq": 4, "device_id": "intruder"},
            7,
            {"ts": 1741940720000, "lat": 52.3699, "lon": 4.8948, "seq": 5},
        ]
    ).encode()
    out = decode_mqtt(TOPIC, payload)
    assert [c.seq for c in out.candidates] == [1, 5]
    assert reasons(out) == ["invalid_schema", "missing_field", "identity_mismatch", "invalid_schema"]
    assert len(out.details) == len(out.rejects)
    assert out.details[0].startswith("invalid_schema: element 1:") and "$.lat" in out.details[0]
    assert "`lat`" in out.details[1]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"ts":"2025-03-14T08:26:55Z","lat":52.3,"lon":4.8,"note":"caf\xe9"}', "invalid_utf8"),
        (b"\xff\xfe{", "invalid_utf8"),
        (b'{"ts":"2025-03-14T08:26:55Z","lat":NaN,"lon":4.8}', "invalid_json"),
        (b'{"ts":"2025-03-14T08:26:55Z","lat":52.3,', "invalid_json"),
        (b'{"ts":1,"lat":1,"lon":1} trailing', "invalid_json"),
        (b'"just a string"', "invalid_schema"),
        (b"42", "invalid_schema"),
        (b'{"ts":"2025-03-14T08:26:55Z","lat":"52.3","lon":4.8}', "invalid_schema"),
        (b'{"ts":"2025-03-14T08:26:55","lat":52.3,"lon":4.8}', "invalid_schema"),  # RFC 3339 needs an offset
        (b'{"ts":1741940813589.5,"lat":52.3,"lon":4.8}', "invalid_schema"),  # epoch ms is an integer
        (b'{"ts":true,"lat":52.3,"lon":4.8}', "invalid_schema"),
        (b'{"ts":1741940813589,"lat":52.3,"lon":4.8,"seq":-1}', "invalid_schema"),
        (b'{"ts":1741940813589,"lat":52.3,"lon":4.8,"seq":9223372036854775808}', "invalid_schema"),
        (b'{"ts":1741940813589,"lat":52.3,"lon":4.8,"mock":"yes"}', "invalid_schema"),
        (b'{"ts":1741940813589,"lon":4.8}', "missing_field"),
        (b'{"lat":52.3,"lon":4.8}', "missing_field"),
        (b'{"ts":1741940813589,"lat":1e400,"lon":4.8}', "non_finite"),
        (b'{"ts":99999999999999999999,"lat":52.3,"lon":4.8}', "invalid_timestamp"),
        (b'{"ts":"9999-12-31T23:59:59-01:00","lat":52.3,"lon":4.8}', "invalid_timestamp"),
    ],
)
def test_each_bad_payload_class_has_its_named_reason(payload: bytes, reason: str) -> None:
    out = decode_mqtt(TOPIC, payload)
    assert out.candidates == []
    assert out.rejects == [((reason,), "bodycam-0042")], out.details


def test_payloads_over_the_size_limit_are_too_large() -> None:
    payload = read("outpost/buffer_flush.json")
    out = decode_mqtt(TOPIC, payload, max_payload_bytes=len(payload) - 1)
    assert out.rejects == [(("too_large",), "bodycam-0042")]
    assert decode_mqtt(TOPIC, payload, max_payload_bytes=len(payload)).rejects == []


@pytest.mark.parametrize(
    "topic",
    [
        "outpost/v1/devices//fix",
        "outpost/v1/devices/a/b/fix",
        "outpost/v2/devices/a/fix",
        "outpost/v1/devices/a/status",
        "devices/a/fix",
        "",
    ],
)
def test_topics_no_decoder_owns_are_unknown(topic: str) -> None:
    assert decode_mqtt(topic, read("outpost/fix_minimal.json")).rejects == [(("unknown_topic",), None)]


@pytest.mark.parametrize("device_id", ["x" * 129, "cam\x00", "cam\u2028x"])
def test_device_ids_that_cannot_be_stored_are_rejected(device_id: str) -> None:
    out = decode_outpost(device_id, read("outpost/fix_minimal.json"))
    assert out.rejects == [(("invalid_device_id",), None)]


def test_an_empty_payload_clears_a_retained_message_and_is_ignored() -> None:
    out = decode_mqtt(TOPIC, b"")
    assert (out.candidates, out.rejects, out.ignored) == ([], [], "outpost:empty_payload")


def test_negative_heading_is_unknown_and_headings_wrap_into_0_360() -> None:
    out = decode_mqtt(
        TOPIC, b'[{"ts":1,"lat":1,"lon":1,"heading_deg":-1},{"ts":2,"lat":1,"lon":1,"heading_deg":360}]'
    )
    assert [c.heading_deg for c in out.candidates] == [None, 0.0]


def test_the_published_json_schema_matches_the_decoder() -> None:
    schema = json.loads(SCHEMA.read_text())
    generated = msgspec.json.schema(OwnFix)["$defs"]["OwnFix"]
    item = schema["$defs"]["fix"]
    assert set(item["properties"]) == set(generated["properties"])
    assert set(item["required"]) == set(generated["required"]) == {"ts", "lat", "lon"}
    assert item["additionalProperties"] is True  # devices may run ahead of us; unknown fields are ignored
    assert [branch["$ref"] if "$ref" in branch else branch["type"] for branch in schema["oneOf"]] == [
        "#/$defs/fix",
        "array",
    ]


def test_an_empty_buffer_flush_is_ignored() -> None:
    out = decode_mqtt(TOPIC, b"[]")
    assert (out.candidates, out.rejects, out.ignored) == ([], [], "outpost:empty_array")
