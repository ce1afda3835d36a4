"""Property tests: no decoder raises on arbitrary bytes or JSON values, and every outcome is well formed."""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.decode import Decoded, decode_mqtt, decode_owntracks_http, decode_traccar_http
from ingest.validate import REASONS

TOPICS = st.sampled_from(
    [
        "outpost/v1/devices/cam-1/fix",
        "owntracks/jane/phone",
        "owntracks/jane/phone/event",
        "outpost/v1/devices//fix",
        "elsewhere",
    ]
)
FIELDS = ["ts", "lat", "lon", "acc_m", "alt_m", "speed_mps", "heading_deg", "battery_pct", "seq", "mock",
          "device_id", "_type", "tst", "acc", "alt", "batt", "vel", "cog", "topic", "location", "coords",
          "timestamp", "latitude", "longitude", "battery", "level", "speed", "heading"]  # fmt: skip

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["location", "2025-03-14T08:26:55Z", "NaN", "-inf", "1e400", "owntracks/a/b"])
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=20,
)


def well_formed(out: Decoded) -> None:
    assert isinstance(out, Decoded)
    assert len(out.details) == len(out.rejects)
    for reasons, _device in out.rejects:
        assert reasons and set(reasons) <= set(REASONS), reasons
        assert "decode_failed" not in reasons, out.details  # the safety net must never be what saves us
    for c in out.candidates:
        assert c.ts.tzinfo is UTC
        assert 0 < len(c.device_id) <= 128


@settings(max_examples=300)
@given(topic=TOPICS, payload=st.binary(max_size=200))
def test_mqtt_decoding_never_raises_on_arbitrary_bytes(topic: str, payload: bytes) -> None:
    well_formed(decode_mqtt(topic, payload))


@settings(max_examples=300)
@given(topic=TOPICS, value=JSON_VALUES)
def test_mqtt_decoding_never_raises_on_arbitrary_json(topic: str, value: Any) -> None:
    well_formed(decode_mqtt(topic, json.dumps(value).encode()))


@settings(max_examples=200)
@given(
    user=st.none() | st.text(max_size=10),
    device=st.none() | st.text(max_size=10),
    body=st.binary(max_size=100) | JSON_VALUES.map(lambda v: json.dumps(v).encode()),
)
def test_owntracks_http_never_raises(user: str | None, device: str | None, body: bytes) -> None:
    well_formed(decode_owntracks_http(user, device, body))


OSMAND_KEYS = ["id", "deviceid", "lat", "lon", "location", "timestamp", "speed", "bearing", "heading",
               "altitude", "accuracy", "batt", "valid", "mock"]  # fmt: skip
QUERY_KEYS = st.sampled_from(OSMAND_KEYS) | st.text(max_size=5)
QUERY_VALUES = st.text(max_size=20) | st.sampled_from(
    ["60.0", "30,60", "1377177267", "1442068686579", "nan", "true"]
)


@settings(max_examples=300)
@given(
    query=st.dictionaries(QUERY_KEYS, QUERY_VALUES, max_size=8),
    body=st.binary(max_size=100) | JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    content_type=st.none()
    | st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain"]),
)
def test_traccar_http_never_raises(query: dict[str, str], body: bytes, content_type: str | None) -> None:
    well_formed(decode_traccar_http(query, body, content_type))
