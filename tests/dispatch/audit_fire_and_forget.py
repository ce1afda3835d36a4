"""`python -m tests.dispatch.audit_fire_and_forget …`: `outpost` with the audit's durability wait switched
off, the old fire-and-forget writer (answers at once, commits every hour): the negative control of
tests/dispatch/test_audit_kill.py. Test-only; nothing in the product can turn the wait off."""

from __future__ import annotations

import sys
from typing import Any

from dispatch import audit
from outpost.cli import main

_init = audit.AuditLog.__init__


def _committing_hourly(self: audit.AuditLog, *args: Any, **kwargs: Any) -> None:
    _init(self, *args, **{**kwargs, "window_s": 3600.0})


async def _answer_at_once(self: audit.AuditLog, *, refuse: bool = True) -> None:
    held = audit._HELD.get()
    if held:
        held.clear()


audit.AuditLog.__init__ = _committing_hourly  # type: ignore[method-assign]
audit.AuditLog.settle = _answer_at_once  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main())
