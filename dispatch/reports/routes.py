"""The monthly report's routes: `GET /v1/reports/monthly?month=&format=` (the stored report of a month that
is over, generated on first asking; the running month computed live), `POST` the same to regenerate a past
month, and the automatic run's schedule.

Role: dispatcher. The report is about named officers (their response times, evaluations, where they spent
their shifts), personnel information a station's dispatchers and supervisors work with; a viewer token is
what a wall screen or a public terminal holds, so it gets none. Changing the schedule is an admin's edit.
Every read is audited (`read_report`), as reads of officers' positions are.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

import msgspec
from aiohttp import web

from dispatch.auth import principal
from dispatch.blocking import run_db
from dispatch.keys import AUDIT_KEY, CLOCK_KEY, ENGINE_KEY
from dispatch.openapi import DocumentedRoutes, H, parameter
from dispatch.problems import InvalidParameter, Unprocessable
from dispatch.reports.assemble import ReportRules, rfc3339
from dispatch.reports.formats import FORMATS, MEDIA_TYPES, RENDERERS
from dispatch.reports.models import MonthlyReportOut
from dispatch.reports.months import MONTH_PATTERN, Month
from dispatch.reports.service import FutureMonth, monthly_report
from dispatch.routes.params import encode, read_body
from store import reports

api = DocumentedRoutes("reports")
RULES_KEY = web.AppKey("outpost.report_rules", ReportRules)


class _Choice:
    """A query parameter naming one of a few values (or, for `month`, a YYYY-MM)."""

    def __init__(self, name: str, description: str, schema: dict[str, object]) -> None:
        self.name, self.description, self.schema = name, description, schema

    def openapi(self) -> dict[str, object]:
        """The OpenAPI parameter object."""
        return parameter(self.name, "query", self.description, self.schema, required=self.name == "month")


MONTH = _Choice(
    "month",
    "the month, YYYY-MM, in the station's time zone (OUTPOST_STATION_TIMEZONE)",
    {"type": "string", "pattern": MONTH_PATTERN},
)
FORMAT = _Choice(
    "format",
    "json (default), csv (one row an officer, then the station) or html (a printable page)",
    {"type": "string", "enum": list(FORMATS), "default": "json"},
)


def _month(request: web.Request) -> Month:
    raw = request.query.get("month")
    if not raw:
        raise InvalidParameter("month", "is required (YYYY-MM)")
    try:
        return Month.parse(raw)
    except ValueError as exc:
        raise InvalidParameter("month", str(exc)) from None


def _format(request: web.Request) -> str:
    fmt = request.query.get("format") or "json"
    if fmt not in FORMATS:
        raise InvalidParameter("format", f"must be one of {', '.join(FORMATS)}, got {fmt[:40]!r}")
    return fmt


async def _answer(request: web.Request, *, regenerate: bool) -> web.Response:
    month, fmt = _month(request), _format(request)
    app = request.app
    actor = principal(request).actor
    try:
        report = await run_db(
            monthly_report,
            app[ENGINE_KEY],
            month,
            app[RULES_KEY],
            now_s=app[CLOCK_KEY].now(),
            trigger="api",
            regenerate=regenerate,
        )
    except FutureMonth as exc:
        raise Unprocessable(str(exc), invalid_params=[{"name": "month", "reason": str(exc)}]) from None
    action = "regenerate_report" if regenerate else "read_report"
    app[AUDIT_KEY].record(actor, action, f"report:{month.label}", {"format": fmt})
    return web.Response(body=RENDERERS[fmt](report), headers={"Content-Type": MEDIA_TYPES[fmt]})


def _report_route(method: str) -> Callable[[H], H]:
    """`method /v1/reports/monthly?month=&format=`, for dispatchers."""
    return api.route(
        method,
        "/v1/reports/monthly",
        role="dispatcher",
        params=[MONTH, FORMAT],
        response=MonthlyReportOut,
        errors=[422],
    )


@_report_route("GET")
async def monthly(request: web.Request) -> web.Response:
    """Each officer's workload and performance over a month, ranked, with station and grid totals (audited)

    A month that is over is answered as stored (generated on the first request, or by the automatic run
    at the start of the next month); the month still running is computed up to now (`complete: false`) and
    not stored; a month that has not begun is a 422 naming `month`. Definitions: README, "Monthly workload
    and performance"."""
    return await _answer(request, regenerate=False)


@_report_route("POST")
async def regenerate_monthly(request: web.Request) -> web.Response:
    """Regenerate a month's report from the data as it is now, replacing the stored one (audited)

    For late data or a corrected roster. The month still running is computed live, as by GET."""
    return await _answer(request, regenerate=True)


class ScheduleIn(msgspec.Struct, forbid_unknown_fields=True):
    """When the monthly report runs by itself."""

    enabled: bool
    hour: Annotated[int, msgspec.Meta(ge=0, le=23)]


class ScheduleOut(msgspec.Struct):
    """The automatic run: on the 1st of each month at `hour` (station time) or later, the month before is
    generated and stored, unless it is stored already."""

    enabled: bool
    hour: int
    timezone: str
    updated_at: str | None
    updated_by: str


def _schedule_out(schedule: reports.Schedule, timezone: str) -> ScheduleOut:
    at = None if schedule.updated_at is None else rfc3339(schedule.updated_at.timestamp())
    return ScheduleOut(schedule.enabled, schedule.hour, timezone, at, schedule.updated_by)


@api.route("GET", "/v1/reports/schedule", role="dispatcher", response=ScheduleOut)
async def get_schedule(request: web.Request) -> web.Response:
    """When the monthly report runs by itself"""
    schedule = await run_db(reports.get_schedule, request.app[ENGINE_KEY])
    return encode(_schedule_out(schedule, request.app[RULES_KEY].timezone))


@api.route("PUT", "/v1/reports/schedule", role="admin", body=ScheduleIn, response=ScheduleOut)
async def put_schedule(request: web.Request) -> web.Response:
    """Turn the automatic monthly report on or off and set its hour (audited)"""
    body = await read_body(request, ScheduleIn)
    actor = principal(request).actor
    now = datetime.fromtimestamp(request.app[CLOCK_KEY].now(), UTC)
    schedule = await run_db(
        reports.set_schedule,
        request.app[ENGINE_KEY],
        enabled=body.enabled,
        hour=body.hour,
        by=actor,
        now=now,
    )
    request.app[AUDIT_KEY].record(actor, "set_report_schedule", "report:schedule", msgspec.to_builtins(body))
    return encode(_schedule_out(schedule, request.app[RULES_KEY].timezone))
