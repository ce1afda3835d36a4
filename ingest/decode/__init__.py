"""Bytes → candidate fixes, one module per input format. Decoders never raise: garbage becomes a reject
with a named reason (see `reasons`), and units are converted here, once (SI units, UTC, lon/lat).

    decode_mqtt(topic, payload)                          routes by topic to one of:
    decode_outpost(device_id, payload)                   outpost/v1/devices/{id}/fix (our own format)
    decode_owntracks(user, device, payload)              owntracks/{user}/{device}; device id "user/device"
    decode_owntracks_http(user, device, body)            OwnTracks HTTP mode
    decode_traccar_http(query, body, content_type)       OsmAnd / Traccar Client (query, form or JSON)

Every decoder takes a keyword `max_payload_bytes` (IngestSettings.max_payload_bytes; larger → too_large).
"""

from ingest.decode.common import DEFAULT_MAX_PAYLOAD_BYTES, MAX_DEVICE_ID_CHARS
from ingest.decode.model import Candidate, Decoded
from ingest.decode.outpost import decode_outpost
from ingest.decode.owntracks import decode_owntracks, decode_owntracks_http
from ingest.decode.reasons import DECODE_REASONS
from ingest.decode.route import decode_mqtt
from ingest.decode.traccar import decode_traccar_http

__all__ = [
    "DECODE_REASONS",
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "MAX_DEVICE_ID_CHARS",
    "Candidate",
    "Decoded",
    "decode_mqtt",
    "decode_outpost",
    "decode_owntracks",
    "decode_owntracks_http",
    "decode_traccar_http",
]
