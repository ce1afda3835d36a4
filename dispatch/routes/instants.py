"""Time parameters: an instant (`from`, `to`, `at`) and a bounded time range, parsed and documented once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from dispatch.openapi import parameter
from dispatch.problems import InvalidParameter, Unprocessable

# Epoch seconds beyond these are not a time a fix can have (and would overflow datetime).
_EARLIEST_S, _LATEST_S = 0.0, 253_402_300_799.0  # 1970-01-01 .. 9999-12-31


@dataclass(frozen=True)
class Instant:
    """An instant query parameter: RFC 3339 with a time zone (`2024-05-30T17:00:00Z`) or epoch seconds."""

    name: str
    description: str
    required: bool = True

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI parameter object."""
        return parameter(
            self.name,
            "query",
            self.description + " (RFC 3339 with a time zone, or epoch seconds)",
            {"type": "string", "maxLength": 64, "examples": ["2024-05-30T17:00:00Z", "1717088400"]},
            required=self.required,
        )

    def get(self, request: web.Request) -> datetime | None:
        """The instant in UTC; None when absent and not required."""
        raw = request.query.get(self.name, "").strip()
        if not raw:
            if self.required:
                raise InvalidParameter(self.name, "is required")
            return None
        return parse_instant(self.name, raw)


def parse_instant(name: str, raw: str) -> datetime:
    """`raw` as a UTC datetime; `InvalidParameter` naming `name` when it is not an instant."""
    if len(raw) > 64:
        raise InvalidParameter(name, "must be an RFC 3339 date-time or epoch seconds, at most 64 characters")
    if raw.isascii() and raw.replace(".", "", 1).isdigit():
        seconds = float(raw)
        if not _EARLIEST_S <= seconds <= _LATEST_S:
            raise InvalidParameter(name, f"epoch seconds must be between 0 and {_LATEST_S:.0f}, got {raw}")
        return datetime.fromtimestamp(seconds, UTC)
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidParameter(name, f"must be an RFC 3339 date-time or epoch seconds, got {raw!r}") from None
    if parsed.tzinfo is None:
        raise InvalidParameter(name, "needs a time zone (e.g. 2024-05-30T17:00:00Z)")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00:00-05:00 is past the last day a datetime can hold, in UTC
        raise InvalidParameter(name, f"is off the calendar once in UTC, got {raw!r}") from None


@dataclass(frozen=True)
class TimeRange:
    """`from` (inclusive) and `to` (exclusive), `to` after `from`, at most `max_s` apart."""

    start: datetime
    end: datetime


FROM = Instant("from", "the range's start, inclusive")
TO = Instant("to", "the range's end, exclusive")


def time_range(request: web.Request, max_s: float) -> TimeRange:
    """The request's `from` and `to`, checked: 400 naming the parameter when absent, unparsable or
    inverted; 422 when longer than `max_s`."""
    start, end = FROM.get(request), TO.get(request)
    assert start is not None and end is not None  # both required
    if end <= start:
        raise InvalidParameter("to", f"must be after from ({start.isoformat()}), got {end.isoformat()}")
    if (end - start).total_seconds() > max_s:
        raise Unprocessable(
            f"the range from {start.isoformat()} to {end.isoformat()} is longer than the {max_s:g} s one "
            "request may read (OUTPOST_TRACK_MAX_RANGE_S): ask for a shorter range",
            max_range_s=max_s,
        )
    return TimeRange(start, end)


def optional_range(
    request: web.Request, start: Instant, end: Instant
) -> tuple[datetime | None, datetime | None]:
    """Two optional instants (either absent: unbounded on that side); 400 naming `end` when both are given
    and `end` is not after `start`."""
    first, last = start.get(request), end.get(request)
    if first is not None and last is not None and last <= first:
        raise InvalidParameter(
            end.name, f"must be after {start.name} ({first.isoformat()}), got {last.isoformat()}"
        )
    return first, last
