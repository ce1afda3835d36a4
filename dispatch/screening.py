"""What every API request is screened for before a handler sees it: the class of hostile input that no
single parameter should have to remember.

A control character (NUL above all: PostgreSQL refuses it in text) in a query value or a path segment is a
400 naming the parameter, whatever the route; a JSON body with a NUL character in any string is a 400 from
`read_body`. Bounds on each value (lengths, ranges, items) are declared with the value, in `schemas.values`
and the route's parameters.
"""

from __future__ import annotations

import re

from aiohttp import web

from dispatch.problems import Handler, InvalidParameter
from schemas.values import CONTROL

# Unicode's control characters (category Cc: C0, DEL, C1) and lone surrogates (Cs). Not every non-printable
# character: a no-break space or a line separator is text a name may hold.
_CONTROL = re.compile(f"[{CONTROL}\ud800-\udfff]")
# A JSON string escape `\u0000` that is not itself escaped (an odd number of backslashes before `u0000`).
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def refuse_control_characters(name: str, value: str) -> None:
    """InvalidParameter naming `name` when `value` holds a control character (or a lone surrogate)."""
    if _CONTROL.search(value):
        raise InvalidParameter(name, "must not contain control characters")


def refuse_nul_in_json(raw: bytes) -> None:
    """InvalidParameter naming the body when a JSON text holds a NUL character (as `\\u0000`)."""
    if b"\\u0000" in raw and _NUL_ESCAPE.search(raw):
        raise InvalidParameter("body", "must not contain NUL characters (\\u0000)")


@web.middleware
async def screening_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse control characters in every query value and path segment."""
    for name, value in request.query.items():
        refuse_control_characters(name, value)
    for name, value in request.match_info.items():
        refuse_control_characters(name, value)
    return await handler(request)


async def harden_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer (an `on_response_prepare` signal): the Server header names no version, and no API answer
    (positions, tracks, incidents, tokens) is kept by a browser or a proxy cache."""
    response.headers["Server"] = "Outpost"
    if request.path.startswith("/v1/"):
        response.headers["Cache-Control"] = "no-store"
