"""Which decoder owns an MQTT topic."""

from __future__ import annotations

from ingest.decode import outpost, owntracks
from ingest.decode import reasons as r
from ingest.decode.common import DEFAULT_MAX_PAYLOAD_BYTES, never_raises
from ingest.decode.model import Decoded, empty
from schemas.topics import fix_device_id, owntracks_levels

# OwnTracks sub-topics (booklet: event, info, cmd, step, beacon, dump, status, waypoint, waypoints). They
# carry no fix of the device; a bounded label keeps Decoded.ignored usable as a metric label.
_OWNTRACKS_SUBTOPICS = frozenset(
    ("event", "info", "cmd", "step", "beacon", "dump", "status", "waypoint", "waypoints", "msg")
)


@never_raises
def decode_mqtt(topic: str, payload: bytes, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> Decoded:
    """Decode one MQTT message, routed by topic: outpost/v1/devices/{id}/fix or owntracks/{user}/{device}."""
    device_id = fix_device_id(topic)
    if device_id is not None:
        return outpost.decode(device_id, payload, max_payload_bytes)
    levels = owntracks_levels(topic)
    if levels is not None:
        if len(levels) == 3:
            return owntracks.decode(levels[1], levels[2], payload, max_payload_bytes)
        sub = levels[3] if levels[3] in _OWNTRACKS_SUBTOPICS else "other"
        out = empty()
        out.ignore(f"owntracks:subtopic={sub}")
        return out
    out = empty()
    out.reject(r.UNKNOWN_TOPIC, None, f"no decoder for topic {topic[:80]!r}")
    return out
