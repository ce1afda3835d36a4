"""The restricted view of stored positions: fixes taken while their unit was off duty.

Every read of stored positions leaves them out. An admin may ask for them by stating why (`?reason=…`, one
line of printable text, 3 to 200 characters): the read is then audited with that reason, and the entry is
written to the audit log before the answer is read, so such a read is never answered unrecorded (a
database away is a 503). Anyone else who asks is refused with 403.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from dispatch.auth import principal
from dispatch.keys import AUDIT_KEY
from dispatch.problems import Forbidden, InvalidParameter
from dispatch.routes.params import QueryText
from schemas.values import PRINTABLE

REASON_MIN, REASON_MAX = 3, 200
REASON = QueryText(
    "reason",
    f"admin only: include the fixes taken off duty, for this stated reason ({REASON_MIN} to {REASON_MAX} "
    "printable characters); the read is audited with it",
)
_PRINTABLE = re.compile(PRINTABLE)


def restricted_reason(request: web.Request) -> str | None:
    """The reason an admin gave for reading restricted fixes; None when none was asked for.

    403 for a caller below admin who asks; 400 naming `reason` when it is empty, too long or not printable.
    """
    raw = request.query.get(REASON.name)
    if raw is None:
        return None
    if not principal(request).may("admin"):
        raise Forbidden("reason: only an admin may read the fixes taken off duty")
    reason = raw.strip()
    if not REASON_MIN <= len(reason) <= REASON_MAX or not _PRINTABLE.match(reason):
        raise InvalidParameter(
            REASON.name, f"must be {REASON_MIN} to {REASON_MAX} printable characters on one line"
        )
    return reason


async def record_read(
    request: web.Request, action: str, subject: str, detail: dict[str, Any], reason: str | None
) -> None:
    """Audit one read of positions; a restricted one carries its reason and is written before it is
    answered (the audit log's `settle`: 503 when the database cannot take it)."""
    audit = request.app[AUDIT_KEY]
    if reason is None:
        audit.record(principal(request).actor, action, subject, detail)
        return
    audit.record(principal(request).actor, action, subject, detail | {"restricted": True, "reason": reason})
    await audit.settle()
