"""What the audit log keeps of a change request (`dispatch.audit`): its method, route and body, made safe
to store, and the status it was answered with.

A change (every method but GET, HEAD and OPTIONS under /v1/) is recorded as `change_requested` and made
durable before its handler runs, then `change_answered` with the status once it is answered; both, and
every record the handler makes, carry the request's id (`detail.request`). So no change exists that the
audit log does not name, even when the process is killed while it is made: a `change_requested` without
its `change_answered` is a request cut short, whose change may or may not have been made.

The body is kept as the caller sent it, within bounds (it is recorded before it is validated): strings cut
to `_STRING_MAX` characters, with control characters and unpaired surrogates replaced (PostgreSQL refuses
a NUL, and one hostile request must not stop the audit of the others); at most `_ITEMS_MAX` members of an
object or array, `_DEPTH_MAX` levels deep; numbers a JSON reader would not give back exactly (beyond 2**53,
not finite) as text, so that the record's hash verifies after the round trip; values of members whose name
says secret, password or token replaced by "[redacted]". A body that is not JSON is kept as its size.
"""

from __future__ import annotations

import math
import re
from typing import Any

import msgspec

from schemas.values import CONTROL

CHANGE_REQUESTED = "change_requested"
CHANGE_ANSWERED = "change_answered"

_STRING_MAX = 256
_SUBJECT_MAX = 512
_ITEMS_MAX = 50
_DEPTH_MAX = 6
_EXACT_INT = 2**53
_UNSAFE = re.compile(f"[{CONTROL}\ud800-\udfff]")  # as dispatch.screening refuses in paths and queries
_SECRET_NAME = re.compile(r"secret|password|token", re.IGNORECASE)
_REDACTED = "[redacted]"


def requested(method: str, route: str, body: bytes) -> dict[str, Any]:
    """The `change_requested` record's detail."""
    detail: dict[str, Any] = {"method": method, "route": route}
    if body:
        try:
            detail["body"] = _safe(msgspec.json.decode(body), 0)
        except msgspec.DecodeError:
            detail["body_bytes"] = len(body)
    return detail


def subject_of(raw_path: str) -> str:
    """The records' subject: the path as sent (percent-encoded, so no control character reaches the
    store), cut to `_SUBJECT_MAX` characters (a btree index entry holds at most about 2,700 bytes)."""
    return raw_path if len(raw_path) <= _SUBJECT_MAX else raw_path[: _SUBJECT_MAX - 1] + "\u2026"


def _safe(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return _UNSAFE.sub("\ufffd", value[:_STRING_MAX])
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if -_EXACT_INT <= value <= _EXACT_INT else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth >= _DEPTH_MAX:
        return "[nested too deep]"
    if isinstance(value, list):
        kept = [_safe(v, depth + 1) for v in value[:_ITEMS_MAX]]
        return [*kept, f"[{len(value) - _ITEMS_MAX} more]"] if len(value) > _ITEMS_MAX else kept
    if isinstance(value, dict):
        items = list(value.items())
        kept_items = {
            _safe(k, depth): _REDACTED if _SECRET_NAME.search(k) else _safe(v, depth + 1)
            for k, v in items[:_ITEMS_MAX]
        }
        if len(items) > _ITEMS_MAX:
            kept_items["[more]"] = len(items) - _ITEMS_MAX
        return kept_items
    return str(value)[:_STRING_MAX]
