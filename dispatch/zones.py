"""The station's time zone: `OUTPOST_STATION_TIMEZONE`, checked against the tz database once."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schemas.config import ConfigError


def station_zone(name: str) -> ZoneInfo:
    """The zone named `name`; ConfigError naming the variable when the tz database has no such zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"OUTPOST_STATION_TIMEZONE={name!r}: no such time zone (an IANA name, e.g. America/Los_Angeles)"
        ) from None
