"""Monthly reports: each month's workload and performance list as generated (stored, so running it again
answers the same report), and the schedule of the automatic run at the start of each month."""

from __future__ import annotations

import sqlalchemy as sa

from schemas.tables.columns import instant
from schemas.tables.registry import one_of

REPORT_TRIGGERS = ("auto", "cli", "api")  # who generated it: the monthly run, `outpost report`, the API


def define(md: sa.MetaData) -> None:
    """Add `monthly_reports` and `report_schedule` to `md`."""
    sa.Table(
        "monthly_reports",
        md,
        sa.Column("month", sa.String(7), primary_key=True),  # YYYY-MM, in the station's time zone
        instant("generated_at", nullable=False),
        sa.Column("trigger", sa.String(8), nullable=False),
        sa.Column("body", sa.JSON, nullable=False),  # the report's figures (dispatch.reports.models)
        one_of("monthly_reports", "trigger", REPORT_TRIGGERS),
    )
    sa.Table(
        "report_schedule",
        md,
        sa.Column("name", sa.String(16), primary_key=True),  # "monthly"
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("hour", sa.SmallInteger, nullable=False),  # station time, on the 1st of the month
        instant("updated_at", nullable=False),
        sa.Column("updated_by", sa.Text, nullable=False),
        sa.CheckConstraint("hour >= 0 AND hour <= 23", name="ck_report_schedule_hour"),
    )
