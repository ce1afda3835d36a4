"""The rules the monthly report follows, taken from the station's settings (the CLI and the API alike)."""

from __future__ import annotations

from dispatch.reports.assemble import ReportRules
from outpost.settings import Settings


def rules_of(settings: Settings) -> ReportRules:
    """The rules a report follows, from the station's settings."""
    return ReportRules(
        timezone=settings.api.station_timezone,
        checkin_early_s=settings.field.checkin_early_s,
        checkin_late_after_s=settings.field.checkin_late_after_s,
        fusion_window_s=settings.api.fusion_recency_window_s,
        max_gap_s=settings.api.max_fix_age_s,
    )
