"""The bounded values that request bodies and device messages are made of, declared once.

Every string and integer a client sends has a bound here: a length, a range, and for ids and names no
control characters (PostgreSQL refuses NUL in text, and a control character in a name breaks the logs and
the screens that show it). msgspec checks them on decode and the OpenAPI document shows them, so the
schema and the code say the same. Free text may hold line breaks and tabs, never NUL.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

# The end of the text, for patterns: `$` also matches before a final line feed (Python's re, which msgspec
# uses), so `^[a-z]+$` would take "abc\n". A lookahead means the same in JSON Schema's regular expressions.
END = r"(?![\s\S])"
# Ids travel in URL paths and MQTT topics: a safe alphabet.
ID_PATTERN = r"^[A-Za-z0-9._:@-]+" + END
# Printable text on one line: no C0 control character and no DEL.
PRINTABLE = r"^[^\x00-\x1f\x7f]*" + END
# What free text may not hold: NUL and the C0 controls other than tab, line feed and carriage return (a
# regular-expression character class; `dispatch.incidents.alarms` cleans an alarm's text of the same).
NOT_IN_TEXT = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
_TEXT = f"^[^{NOT_IN_TEXT}]*" + END
# What no query value or path segment may hold, whatever the route: Unicode's control characters (C0, DEL,
# C1). `dispatch.screening` refuses them in every one, and the document says so on every string parameter.
CONTROL = r"\x00-\x1f\x7f-\x9f"
NO_CONTROL = f"^[^{CONTROL}]*" + END

UnitId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=ID_PATTERN)]
DeviceId = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=ID_PATTERN)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=PRINTABLE)]
Skill = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=PRINTABLE)]
Skills = Annotated[list[Skill], msgspec.Meta(max_length=64)]
Reason = Annotated[str, msgspec.Meta(max_length=500, pattern=_TEXT)]
Text = Annotated[str, msgspec.Meta(max_length=4000, pattern=_TEXT)]
MessageId = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=PRINTABLE)]
# Fusion priority of a device among its unit's devices (stored as a 32-bit integer).
DevicePriority = Annotated[int, msgspec.Meta(ge=-1000, le=1000)]
# A GeoJSON Polygon or MultiPolygon (lon/lat) in a body. The schema shows its shape; the route checks its
# rings (closed, valid, within the world) and answers a 400 naming `body.geometry`.
AreaGeometry = Annotated[
    dict[str, Any],
    msgspec.Meta(
        extra_json_schema={
            "required": ["type", "coordinates"],
            "properties": {"type": {"enum": ["Polygon", "MultiPolygon"]}, "coordinates": {"type": "array"}},
        }
    ),
]
