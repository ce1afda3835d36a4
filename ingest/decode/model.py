"""What decoding yields: unit-converted candidate positions, and the messages that could not be decoded."""

from __future__ import annotations

from datetime import datetime

import msgspec


class Candidate(msgspec.Struct, gc=False):
    """A decoded, unit-converted, not yet validated position. SI units, UTC, coordinates lon, lat."""

    device_id: str
    ts: datetime  # timezone-aware UTC
    lon: float
    lat: float
    accuracy_m: float | None = None
    speed_mps: float | None = None
    heading_deg: float | None = None  # [0, 360) when finite
    altitude_m: float | None = None
    battery_pct: float | None = None
    seq: int | None = None
    mock: bool = False


class Decoded(msgspec.Struct):
    """The result of decoding one message. Decoders never raise: every problem becomes a reject."""

    candidates: list[Candidate]
    # (reasons, device_id if known), one per message or array element that could not be decoded.
    rejects: list[tuple[tuple[str, ...], str | None]]
    # Set when the message (or, in an array, the first such element) is valid but carries no position,
    # e.g. "owntracks:_type=transition": counted and ignored, never an error. Bounded vocabulary.
    ignored: str | None = None
    # One human-readable line per reject, same order: which field and why ("invalid_schema: Expected
    # `float`, got `str` - at `$.lat`"). For logs and dead letters; never a metric label.
    details: list[str] = msgspec.field(default_factory=list)

    def reject(self, reason: str, device_id: str | None, detail: str) -> None:
        """Record one reject and its detail."""
        self.rejects.append(((reason,), device_id))
        self.details.append(f"{reason}: {detail}")

    def ignore(self, kind: str) -> None:
        """Record that a valid non-position element was skipped (the first kind wins)."""
        if self.ignored is None:
            self.ignored = kind


def empty() -> Decoded:
    """A fresh, empty result to fill."""
    return Decoded(candidates=[], rejects=[])
