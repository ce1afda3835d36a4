"""What a device may send besides fixes, one shape a kind (the payloads of `outpost/v1/devices/{id}/<kind>`
and of their HTTP twins under `/ingest/v1/devices/{id}/<kind>`).

Ingest checks a message against its shape before handing it on (a malformed one is dead-lettered), and
dispatch decodes it with the same type, so the two cannot disagree about what a device may say.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from schemas.values import MessageId, Reason
from schemas.vocabulary import DeviceStatus

# A device's own ids for its messages (a check-in id, a roll call's id): printable, bounded.


class ReplyIn(msgspec.Struct):
    """A device's answer to an offer."""

    offer_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    answer: Literal["accept", "decline"]


class AlarmIn(msgspec.Struct):
    """An SOS: where (else the unit's last position), and what."""

    lon: Annotated[float, msgspec.Meta(ge=-180.0, le=180.0)] | None = None
    lat: Annotated[float, msgspec.Meta(ge=-90.0, le=90.0)] | None = None
    description: Annotated[str, msgspec.Meta(max_length=4000)] = ""


class CarriedFix(msgspec.Struct, forbid_unknown_fields=True):
    """A fix a check-in or a roll-call answer carries (Outpost's own fix format, the fields that count)."""

    ts: (
        Annotated[datetime, msgspec.Meta(tz=True)]
        | Annotated[int, msgspec.Meta(ge=0, le=253_402_300_799_000)]
    )
    lat: Annotated[float, msgspec.Meta(ge=-90.0, le=90.0)]
    lon: Annotated[float, msgspec.Meta(ge=-180.0, le=180.0)]
    acc_m: Annotated[float, msgspec.Meta(ge=0.0, le=1_000_000.0)] | None = None
    mock: bool = False


class StatusIn(msgspec.Struct, forbid_unknown_fields=True):
    """A device reports its unit's duty status (`why` is kept in the status history)."""

    status: DeviceStatus
    why: Reason = ""


class CheckinIn(msgspec.Struct, forbid_unknown_fields=True):
    """A device checks its unit in on its assigned grid; `checkin_id` makes retries idempotent. Without
    `fix`, the device's latest fix is judged."""

    checkin_id: MessageId
    fix: CarriedFix | None = None


class AnswerIn(msgspec.Struct, forbid_unknown_fields=True):
    """A device answers a roll call; it counts with a fix newer than the roll call's start (carried, or
    the device's latest)."""

    rollcall_id: MessageId
    fix: CarriedFix | None = None


SHAPES: dict[str, type[msgspec.Struct]] = {
    "reply": ReplyIn,
    "alarm": AlarmIn,
    "status": StatusIn,
    "checkin": CheckinIn,
    "answer": AnswerIn,
}


def carried_ts_s(fix: CarriedFix) -> float:
    """The carried fix's time in epoch seconds (`ts` RFC 3339 with a zone, or epoch milliseconds)."""
    return fix.ts.timestamp() if isinstance(fix.ts, datetime) else fix.ts / 1000.0
