"""A report's month: `YYYY-MM`, in the station's time zone (a month of a station on the US west coast
starts at 07:00 or 08:00 UTC), its bounds in epoch seconds, and which month is due when."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from schemas.values import END

# YYYY-MM from 1970-01, ASCII digits only (`\d` and int() take other scripts' digits too); the API's
# document shows the same pattern.
MONTH_PATTERN = r"^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])" + END
_FORMAT = re.compile(MONTH_PATTERN)
_LAST_YEAR = 9999
_AFTER_THE_CALENDAR_S = 253_402_300_800.0  # 10000-01-01T00:00:00Z


@dataclass(frozen=True, order=True)
class Month:
    """A calendar month."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        """`YYYY-MM`; ValueError saying what is wrong otherwise."""
        found = _FORMAT.match(text)
        if found is None:
            raise ValueError(f"must be a month as YYYY-MM from 1970-01 (e.g. 2026-11), got {text[:40]!r}")
        return cls(int(found.group(1)), int(found.group(2)))

    @property
    def label(self) -> str:
        """`YYYY-MM`."""
        return f"{self.year:04d}-{self.month:02d}"

    def following(self) -> Month:
        """The next month."""
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def preceding(self) -> Month:
        """The month before."""
        return Month(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def start_s(self, zone: ZoneInfo) -> float:
        """Midnight of its 1st in `zone`, as epoch seconds (10000-01, the end of 9999-12: at UTC midnight,
        past the calendar a datetime holds)."""
        if self.year > _LAST_YEAR:
            return _AFTER_THE_CALENDAR_S
        return datetime(self.year, self.month, 1, tzinfo=zone).timestamp()

    def bounds(self, zone: ZoneInfo) -> tuple[float, float]:
        """[start, end) in epoch seconds: midnight of its 1st to midnight of the next month's, in `zone`."""
        return self.start_s(zone), self.following().start_s(zone)


def month_of(epoch_s: float, zone: ZoneInfo) -> Month:
    """The month `epoch_s` falls in, in `zone`."""
    local = datetime.fromtimestamp(epoch_s, zone)
    return Month(local.year, local.month)


def due_month(now_s: float, zone: ZoneInfo, hour: int) -> Month | None:
    """The month the automatic run reports on at `now_s`: the previous month, once it is `hour` o'clock on
    the 1st (station time) or later; None before that on the 1st."""
    current = month_of(now_s, zone)
    local = datetime.fromtimestamp(now_s, zone)
    if local.day == 1 and local.hour < hour:
        return None
    return current.preceding()
