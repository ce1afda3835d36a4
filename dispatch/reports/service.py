"""Generating, storing and reading back monthly reports, and the automatic run at the start of each month.

A month that is over is generated once and stored; asking again answers the stored report (the same
figures, byte for byte), and `regenerate` recomputes and replaces it (late data, a corrected roster). The
month still running is computed up to now and never stored. A month that has not begun is refused.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import msgspec
from sqlalchemy import Engine

from dispatch.clock import Clock
from dispatch.reports.assemble import ReportRules, build_report, rfc3339
from dispatch.reports.maths import NOT_MOVEMENT
from dispatch.reports.models import MonthlyReport, MonthlyReportOut
from dispatch.reports.months import Month, due_month
from store import reports

log = logging.getLogger(__name__)

# How often the automatic run looks whether a month is due (s): it runs within this of the hour.
CHECK_EVERY_S = 60.0


class FutureMonth(ValueError):  # noqa: N818 (reads as a verdict)
    """The month has not begun: there is nothing to report."""

    def __init__(self, month: Month) -> None:
        super().__init__(f"{month.label} has not begun yet (station time): no report of it")
        self.month = month


def generate(engine: Engine, month: Month, rules: ReportRules, now_s: float) -> MonthlyReport:
    """Compute the report of `month` from the database, up to `now_s` (or the month's end)."""
    start_s, end_s = month.bounds(ZoneInfo(rules.timezone))
    data = reports.read_month(engine, start_s, end_s, early_s=rules.checkin_early_s)
    officers = [o.id for o in data.officers]
    fixes = reports.unit_fixes(engine, officers, start_s, min(end_s, now_s), skip_flags=NOT_MOVEMENT)
    return build_report(data, fixes, rules, month, now_s)


def _out(report: MonthlyReport, generated_at: str, trigger: str) -> MonthlyReportOut:
    fields = msgspec.structs.asdict(report)
    return MonthlyReportOut(**fields, generated_at=generated_at, trigger=trigger)


def monthly_report(
    engine: Engine,
    month: Month,
    rules: ReportRules,
    *,
    now_s: float,
    trigger: str,
    regenerate: bool = False,
) -> MonthlyReportOut:
    """The report of `month`: stored when the month is over (generated now if it was not, or if
    `regenerate`), computed live while it runs; FutureMonth before it begins."""
    start_s, end_s = month.bounds(ZoneInfo(rules.timezone))
    if start_s > now_s:
        raise FutureMonth(month)
    now_text = rfc3339(now_s)
    if end_s > now_s:
        return _out(generate(engine, month, rules, now_s), now_text, trigger)
    stored = None if regenerate else reports.get_report(engine, month.label)
    if stored is not None:
        return _stored(stored)
    report = generate(engine, month, rules, now_s)
    body = msgspec.to_builtins(report)
    drafted = reports.StoredReport(month.label, _datetime(now_s), trigger, body)
    stored = reports.save_report(engine, drafted, replace=regenerate)
    return _stored(stored)


def _stored(stored: reports.StoredReport) -> MonthlyReportOut:
    body = msgspec.convert(stored.body, MonthlyReport)
    return _out(body, rfc3339(stored.generated_at.timestamp()), stored.trigger)


def run_due(engine: Engine, rules: ReportRules, now_s: float) -> str | None:
    """The automatic run, once: the month due at `now_s` (see `due_month`) generated and stored unless it
    is already stored or the schedule is off; the month generated, or None."""
    schedule = reports.get_schedule(engine)
    if not schedule.enabled:
        return None
    month = due_month(now_s, ZoneInfo(rules.timezone), schedule.hour)
    if month is None or reports.get_report(engine, month.label) is not None:
        return None
    monthly_report(engine, month, rules, now_s=now_s, trigger="auto")
    log.info("monthly report generated", extra={"month": month.label})
    return month.label


async def run_schedule(engine: Engine, clock: Clock, rules: ReportRules) -> None:
    """Run `run_due` every CHECK_EVERY_S on the app's clock, for as long as the app runs."""
    while True:
        try:
            await asyncio.to_thread(run_due, engine, rules, clock.now())
        except Exception:
            log.warning("the automatic monthly report failed; it is tried again", exc_info=True)
        await clock.sleep(CHECK_EVERY_S)


def _datetime(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)
