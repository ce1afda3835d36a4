"""A monthly report as JSON, CSV (one row an officer, in rank order, then the station's row) or HTML."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import msgspec

from dispatch.reports.html import render_html
from dispatch.reports.models import MonthlyReportOut, Offers, ResponseFigures

FORMATS = ("json", "csv", "html")
MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "html": "text/html; charset=utf-8",
}
_INTERVALS = ("dispatch_to_en_route", "en_route_to_on_scene", "call_to_on_scene")
_COUNTED = (
    ("checkins", ("on_time", "late", "missing")),
    ("rollcalls", ("present", "late", "silent", "without_fix")),
)


def columns() -> list[str]:
    """The CSV header."""
    head = ["rank", "unit_id", "name", "kind", *(f"incidents_{p}" for p in ("P1", "P2", "P3", "P4"))]
    head += ["incidents_total", *(f"offers_{s}" for s in Offers.__struct_fields__)]
    head += [f"{i}_{f}" for i in _INTERVALS for f in ("count", "p50_s", "p90_s")]
    head += ["distance_m", "duty_hours", "assigned_duty_hours", "inside_grid_share"]
    head += [f"{group}_{name}" for group, names in _COUNTED for name in names]
    return [*head, "evaluations", "mean_score", "feedback"]


def _row(rank: Any, unit_id: str, name: str, kind: str, figures: Any) -> list[Any]:
    responses: ResponseFigures = figures.responses
    row: list[Any] = [rank, unit_id, name, kind, *figures.incidents.values(), figures.incidents_total]
    row += [getattr(figures.offers, s) for s in Offers.__struct_fields__]
    for interval in _INTERVALS:
        r = getattr(responses, interval)
        row += [r.count, _blank(r.p50_s), _blank(r.p90_s)]
    row += [figures.distance_m, figures.duty_hours, figures.assigned_duty_hours]
    row.append(_blank(figures.inside_grid_share))
    row += [getattr(getattr(figures, group), name) for group, names in _COUNTED for name in names]
    return [*row, figures.evaluations, _blank(figures.mean_score), figures.feedback]


def _blank(value: float | None) -> Any:
    return "" if value is None else value


def render_csv(report: MonthlyReportOut) -> bytes:
    """One row an officer in rank order, then `station`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns())
    for o in report.officers:
        writer.writerow(_row(o.rank, o.unit_id, o.name, o.kind, o))
    if report.station is not None:
        writer.writerow(_row("", "station", "", "", report.station))
    return out.getvalue().encode()


def render_json(report: MonthlyReportOut) -> bytes:
    """The report as JSON."""
    return msgspec.json.encode(report)


RENDERERS: dict[str, Callable[[MonthlyReportOut], bytes]] = {
    "json": render_json,
    "csv": render_csv,
    "html": lambda report: render_html(report).encode(),
}
