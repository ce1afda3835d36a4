"""The names of every reason a message can fail decoding for (dead-letter reasons, metric labels)."""

from __future__ import annotations

UNKNOWN_TOPIC = "unknown_topic"  # an MQTT topic no decoder owns
TOO_LARGE = "too_large"  # payload over IngestSettings.max_payload_bytes
INVALID_UTF8 = "invalid_utf8"
INVALID_JSON = "invalid_json"
INVALID_SCHEMA = "invalid_schema"  # wrong shape or type; the detail names the field
MISSING_FIELD = "missing_field"  # a required field is absent or null; the detail names it
INVALID_TIMESTAMP = "invalid_timestamp"  # unparseable, or outside the representable range of dates
INVALID_DEVICE_ID = "invalid_device_id"  # empty, over 128 characters, control characters, + or #
IDENTITY_MISMATCH = "identity_mismatch"  # the payload names another device than its topic or headers
NON_FINITE = "non_finite"  # NaN or ±inf; also a validation rule (numbers other than the time)
INVALID_FIX = "invalid_fix"  # the device itself marks the fix invalid (OsmAnd `valid=false`)
DECODE_FAILED = "decode_failed"  # a decoder bug caught by the safety net; tests assert it never fires

DECODE_REASONS: tuple[str, ...] = (
    UNKNOWN_TOPIC,
    TOO_LARGE,
    INVALID_UTF8,
    INVALID_JSON,
    INVALID_SCHEMA,
    MISSING_FIELD,
    INVALID_TIMESTAMP,
    INVALID_DEVICE_ID,
    IDENTITY_MISMATCH,
    NON_FINITE,
    INVALID_FIX,
    DECODE_FAILED,
)
