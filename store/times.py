"""Timestamps at the storage boundary: timezone-aware UTC in, timezone-aware UTC out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def utc(dt: datetime) -> datetime:
    """`dt` in UTC; refuses naive datetimes, whose meaning would depend on the machine's time zone."""
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt.isoformat()}: Outpost stores timezone-aware UTC only")
    return dt.astimezone(UTC)


def as_utc(value: datetime) -> datetime:
    """A timezone-aware UTC datetime; a naive one is UTC already (SQLite hands timestamps back naive)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


FIRST_INSTANT = datetime.min.replace(tzinfo=UTC)


def earlier(dt: datetime, by: timedelta) -> datetime:
    """`by` before `dt`, or the calendar's first instant when that would be before year 1 (a look-back
    from an instant a caller gave, such as 0001-01-01T00:00:00Z)."""
    try:
        return dt - by
    except OverflowError:
        return FIRST_INSTANT
