"""Timestamps at the storage boundary: timezone-aware UTC in, timezone-aware UTC out."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(dt: datetime) -> datetime:
    """`dt` in UTC; refuses naive datetimes, whose meaning would depend on the machine's time zone."""
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt.isoformat()}: Outpost stores timezone-aware UTC only")
    return dt.astimezone(UTC)


def as_utc(value: datetime) -> datetime:
    """A timezone-aware UTC datetime; a naive one is UTC already (SQLite hands timestamps back naive)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
