"""The OpenAPI description of the ingest endpoints (merged into the API's document)."""

from __future__ import annotations

from typing import Any

import msgspec

from ingest.http.devices import device_path, owntracks_device_path
from ingest.http.fixes import OSMAND_PATH, OWNTRACKS_PATH
from schemas.device_messages import SHAPES
from schemas.topics import ANSWER, CHECKIN, DEVICE_MESSAGE_KINDS, STATUS
from schemas.values import NO_CONTROL

# A query value or path segment: control characters are refused in every one (the API's screening).
_STRING = {"type": "string", "pattern": NO_CONTROL}
_PROBLEM = {
    "application/problem+json": {
        "schema": {
            "type": "object",
            "required": ["type", "title", "status", "detail", "instance"],
            "properties": {
                "type": {"type": "string", "format": "uri"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "instance": {"type": "string"},
                "invalid_params": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "reason"],
                        "properties": {"name": {"type": "string"}, "reason": {"type": "string"}},
                    },
                    "description": "Each field at fault (in the device format's words) and why.",
                },
                "reasons": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Dead-letter reasons.",
                },
            },
        }
    }
}
_RESPONSES = {
    "401": {
        "description": "The device has credentials: present its secret (basic auth password, "
        "`key` query parameter or bearer token).",
        "content": _PROBLEM,
    },
    "400": {
        "description": "Rejected: every reason is listed; the fix is dead-lettered.",
        "content": _PROBLEM,
    },
    "403": {
        "description": "Unknown or disabled device, or one without credentials (`no_credentials`).",
        "content": _PROBLEM,
    },
    "503": {
        "description": "Not stored yet (database and spool unavailable, or overloaded): retry later.",
        "content": _PROBLEM,
    },
}
_OSMAND_PARAMS = [
    {
        "name": name,
        "in": "query",
        "required": False,
        "schema": _STRING if kind == "string" else {"type": kind},
    }
    | {"description": doc}
    for name, kind, doc in (
        ("id", "string", "Device id (also `deviceid`)."),
        ("lat", "number", "Latitude, degrees."),
        ("lon", "number", "Longitude, degrees."),
        ("timestamp", "string", "Epoch seconds or milliseconds, or ISO 8601; default: arrival time."),
        ("speed", "number", "Speed, knots."),
        ("bearing", "number", "Heading, degrees."),
        ("altitude", "number", "Altitude, metres."),
        ("accuracy", "number", "Accuracy, metres."),
        ("batt", "number", "Battery, percent."),
        ("mock", "boolean", "The location may be spoofed."),
        ("key", "string", "The device secret, if not sent as basic auth or bearer token."),
    )
]
# An OwnTracks message: a location is stored, any other `_type` (of any JSON type) is ignored and counted.
_OT_MESSAGE = {
    "type": "object",
    "required": ["_type"],
    "properties": {
        "_type": {"not": {"type": "null"}, "description": "`location` is stored, others ignored."}
    },
}
_OT_MESSAGES = {"type": "array", "items": _OT_MESSAGE}
_OK_TEXT = {"200": {"description": "Stored.", "content": {"text/plain": {"schema": {"type": "string"}}}}}

_DEVICE_BODIES: dict[str, dict[str, Any]] = {
    "reply": {
        "type": "object",
        "required": ["offer_id", "answer"],
        "properties": {
            "offer_id": {"type": "string", "minLength": 1, "maxLength": 200},
            "answer": {"type": "string", "enum": ["accept", "decline"]},
        },
    },
    # An SOS is never refused for its fields (dispatch.incidents.alarms): an unusable position falls back to
    # the unit's last one, and a long text is cut; so the schema bounds neither.
    "alarm": {
        "type": "object",
        "properties": {
            "lon": {"type": ["number", "null"], "description": "Degrees (-180 to 180)."},
            "lat": {"type": ["number", "null"], "description": "Degrees (-90 to 90)."},
            "description": {"type": "string", "description": "Cut at 4000 characters."},
        },
        "description": "Optional (an empty body is an SOS): without a usable lon/lat (missing, null or out "
        "of range), the unit's last position.",
    },
}
# The newer kinds' bodies come from their msgspec shapes, the types ingest checks them with.
_GENERATED = (STATUS, CHECKIN, ANSWER)
# Named `Device…` in the document: the API has a `StatusIn` of its own (a dispatcher's).
_REF = "#/components/schemas/Device{name}"
_schemas, _components = msgspec.json.schema_components([SHAPES[k] for k in _GENERATED], ref_template=_REF)
OPENAPI_COMPONENTS = {f"Device{name}": schema for name, schema in _components.items()}
_DEVICE_BODIES.update(dict(zip(_GENERATED, (dict(s) for s in _schemas), strict=True)))
_DEVICE_SUMMARIES = {
    "reply": "A device accepts or declines an offer (the HTTP twin of MQTT `outpost/v1/devices/{id}/reply`)",
    "alarm": "A device raises an SOS: a P1 incident (the HTTP twin of MQTT `outpost/v1/devices/{id}/alarm`)",
    "status": "A device reports its unit's duty status (HTTP twin of MQTT `outpost/v1/devices/{id}/status`)",
    "checkin": "A device checks its unit in on its grid; the answer gives every reason (MQTT twin: "
    "`outpost/v1/devices/{id}/checkin`)",
    "answer": "A device answers a roll call (the HTTP twin of MQTT `outpost/v1/devices/{id}/answer`)",
}


def _device_operation(kind: str, *, owntracks: bool = False) -> dict[str, Any]:
    ids = [{"name": "device_id", "in": "path", "required": True, "schema": _STRING}]
    if owntracks:
        ids = [
            {"name": name, "in": "path", "required": True, "schema": _STRING, "description": doc}
            for name, doc in (("user", "OwnTracks user"), ("device", "OwnTracks device"))
        ]
    summary = _DEVICE_SUMMARIES[kind]
    return {
        "summary": summary + (", for an OwnTracks id `user/device`" if owntracks else ""),
        "tags": ["ingest"],
        "security": [],
        "parameters": [
            *ids,
            {
                "name": "key",
                "in": "query",
                "required": False,
                "schema": _STRING,
                "description": "The device secret, if not sent as basic auth or bearer token.",
            },
        ],
        "requestBody": {
            "required": kind != "alarm",
            "content": {"application/json": {"schema": _DEVICE_BODIES[kind]}},
        },
        "responses": {
            "202": {
                "description": "Handed to dispatch. `taken`: done (offer answered, incident raised); "
                "`refused`: dispatch would not (the offer is closed, the device is not the unit's, no "
                "position), see `detail`; `forwarded`: no outcome in time, it is still being handled.",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["outcome", "detail"],
                            "properties": {
                                "outcome": {"type": "string", "enum": ["taken", "refused", "forwarded"]},
                                "detail": {"type": "string"},
                                "reasons": {
                                    "type": "array",
                                    "items": {"type": "string"},
                                    "description": "Every reason a check-in, status or answer was refused.",
                                },
                            },
                        }
                    }
                },
            },
            "400": {"description": "Malformed body (`detail` says why).", "content": _PROBLEM},
            "401": _RESPONSES["401"],
            "403": _RESPONSES["403"],
            "413": {"description": "Body larger than `max_payload_bytes`.", "content": _PROBLEM},
            "503": {
                "description": "No dispatcher behind this ingest (the `ingest` role).",
                "content": _PROBLEM,
            },
        },
    }


OPENAPI_PATHS: dict[str, Any] = {
    OSMAND_PATH: {
        "get": {
            "summary": "OsmAnd / Traccar Client position (query parameters)",
            "tags": ["ingest"],
            "security": [],
            "parameters": _OSMAND_PARAMS,
            "responses": {**_OK_TEXT, **_RESPONSES},
        },
        "post": {
            "summary": "Traccar Client 9+ position (JSON body) or OsmAnd form body",
            "tags": ["ingest"],
            "security": [],
            "parameters": _OSMAND_PARAMS,
            "requestBody": {
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["device_id", "location"],
                            "properties": {"device_id": {"type": "string"}, "location": {"type": "object"}},
                        }
                    },
                    "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                }
            },
            "responses": {**_OK_TEXT, **_RESPONSES},
        },
    },
    OWNTRACKS_PATH: {
        "post": {
            "summary": "OwnTracks HTTP mode (device id `user/device` from X-Limit-U / X-Limit-D)",
            "tags": ["ingest"],
            "security": [],
            "parameters": [
                {"name": "X-Limit-U", "in": "header", "schema": {"type": "string"}, "description": "User."},
                {"name": "X-Limit-D", "in": "header", "schema": {"type": "string"}, "description": "Device."},
            ],
            "requestBody": {
                "required": False,  # an empty body is ignored and counted, as an empty MQTT payload is
                "content": {"application/json": {"schema": {"anyOf": [_OT_MESSAGE, _OT_MESSAGES]}}},
            },
            "responses": {
                "200": {
                    "description": "Stored (or ignored: not a location). No commands for the device.",
                    "content": {"application/json": {"schema": {"type": "array", "maxItems": 0}}},
                },
                **_RESPONSES,
            },
        },
    },
    **{device_path(kind): {"post": _device_operation(kind)} for kind in DEVICE_MESSAGE_KINDS},
    **{
        owntracks_device_path(kind): {"post": _device_operation(kind, owntracks=True)}
        for kind in DEVICE_MESSAGE_KINDS
    },
}
