"""The duty rule: what becomes of a fix taken while its unit is off duty (OUTPOST_OFF_DUTY_FIXES).

Off duty means the unit's status is `off_duty`, whatever the roster says: an officer called in outside a
shift is on duty once the status says so, and one who went home early is off duty from then on (the
README's privacy section). Ingest knows it from the device directory, which carries each device's unit
status and is reloaded at once when the API moves a unit to or from `off_duty`.

`restricted` (the default): the fix is stored with `restricted` set, never handed to the live picture, and
read back only by an admin who states a reason. `drop`: the fix is not stored at all; it is counted
(`outpost_ingest_ignored_total{kind="off_duty_dropped"}`) and acknowledged like a stored one, so the device
does not send it again: it was deliberately not kept, not lost.
"""

from __future__ import annotations

import msgspec

from schemas.fix import Fix

OFF_DUTY = "off_duty"  # the unit status that makes a fix private
DROPPED = "off_duty_dropped"  # the ignored kind a dropped fix is counted under
MODES = ("restricted", "drop")


def is_off_duty(unit_status: str | None) -> bool:
    """Whether a unit in `unit_status` is off duty (None: no unit, or its status unknown: not off duty)."""
    return unit_status == OFF_DUTY


class DutyRule:
    """Applied to every fix of a device whose unit is off duty (the on-duty path never calls it)."""

    def __init__(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"off_duty_fixes={mode!r}: must be one of {', '.join(MODES)}")
        self._drop = mode == "drop"

    def apply(self, fix: Fix) -> Fix | None:
        """The fix to store, marked restricted; None when it is to be dropped."""
        return None if self._drop else msgspec.structs.replace(fix, restricted=True)
