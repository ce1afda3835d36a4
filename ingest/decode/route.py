"""Which decoder owns an MQTT topic."""

from __future__ import annotations

from ingest.decode import outpost, owntracks
from ingest.decode import reasons as r
from ingest.decode.common import DEFAULT_MAX_PAYLOAD_BYTES, never_raises
from ingest.decode.model import Decoded, empty

OUTPOST_PREFIX = "outpost/v1/devices/"
OUTPOST_SUFFIX = "/fix"
OWNTRACKS_PREFIX = "owntracks/"
# OwnTracks sub-topics (booklet: event, info, cmd, step, beacon, dump, status, waypoint, waypoints). They
# carry no fix of the device; a bounded label keeps Decoded.ignored usable as a metric label.
_OWNTRACKS_SUBTOPICS = frozenset(
    ("event", "info", "cmd", "step", "beacon", "dump", "status", "waypoint", "waypoints", "msg")
)


@never_raises
def decode_mqtt(topic: str, payload: bytes, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> Decoded:
    """Decode one MQTT message, routed by topic: outpost/v1/devices/{id}/fix or owntracks/{user}/{device}."""
    if topic.startswith(OUTPOST_PREFIX) and topic.endswith(OUTPOST_SUFFIX):
        device_id = topic[len(OUTPOST_PREFIX) : -len(OUTPOST_SUFFIX)]
        if device_id and "/" not in device_id:
            return outpost.decode(device_id, payload, max_payload_bytes)
    elif topic.startswith(OWNTRACKS_PREFIX):
        levels = topic.split("/")
        if len(levels) == 3 and levels[1] and levels[2]:
            return owntracks.decode(levels[1], levels[2], payload, max_payload_bytes)
        if len(levels) > 3 and levels[1] and levels[2]:
            sub = levels[3] if levels[3] in _OWNTRACKS_SUBTOPICS else "other"
            out = empty()
            out.ignore(f"owntracks:subtopic={sub}")
            return out
    out = empty()
    out.reject(r.UNKNOWN_TOPIC, None, f"no decoder for topic {topic[:80]!r}")
    return out
