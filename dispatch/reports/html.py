"""The printable HTML page of a monthly report, for the station chief: the station's figures, the ranked
officers each with a small inline SVG chart (incidents by priority, share of duty inside the grid), the
grids. One self-contained page: no script, no stylesheet or font from elsewhere; prints on A4."""

from __future__ import annotations

from html import escape

from dispatch.reports.models import MonthlyReportOut, Officer, Responses

_COLOURS = {"P1": "#b2182b", "P2": "#ef8a62", "P3": "#67a9cf", "P4": "#2166ac"}
_STYLE = """
body { font: 11pt/1.35 system-ui, sans-serif; margin: 1.5em; color: #111; }
h1 { font-size: 16pt; margin: 0 0 .2em; } h2 { font-size: 13pt; margin: 1.2em 0 .4em; }
table { border-collapse: collapse; width: 100%; } th, td { padding: 2px 6px; border-bottom: 1px solid #ccc; }
th { text-align: left; font-weight: 600; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr { page-break-inside: avoid; } .meta { color: #555; }
@media print { body { margin: 0; } @page { size: A4 landscape; margin: 12mm; } }
"""


def _num(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _pct(share: float | None) -> str:
    return "–" if share is None else f"{share * 100:.0f} %"


def _p(r: Responses) -> str:
    return f"{_num(r.p50_s)} / {_num(r.p90_s)}"


def chart(officer: Officer, most_incidents: int) -> str:
    """A 180×44 SVG: one bar per priority (scaled to the station's busiest officer) and, below, the share of
    assigned duty spent inside the grid."""
    width, bar_h = 120.0, 7.0
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="180" height="44" viewBox="0 0 180 44" role="img"'
        f' aria-label="incidents by priority and time inside the grid of {escape(officer.unit_id)}">'
    ]
    for n, (priority, count) in enumerate(officer.incidents.items()):
        y = n * (bar_h + 1)
        w = width * count / most_incidents if most_incidents else 0.0
        parts.append(
            f'<text x="0" y="{y + 6.5:g}" font-size="7">{priority}</text>'
            f'<rect x="14" y="{y:g}" width="{w:.1f}" height="{bar_h:g}" fill="{_COLOURS[priority]}"/>'
            f'<text x="{16 + w:.1f}" y="{y + 6.5:g}" font-size="7">{count}</text>'
        )
    share = officer.inside_grid_share
    parts.append(f'<rect x="14" y="35" width="{width:g}" height="6" fill="#eee"/>')
    if share is not None:
        parts.append(f'<rect x="14" y="35" width="{width * share:.1f}" height="6" fill="#4d9221"/>')
    parts.append(f'<text x="{18 + width:g}" y="41" font-size="7">{_pct(share)} in grid</text></svg>')
    return "".join(parts)


def render_html(report: MonthlyReportOut) -> str:
    """The whole page."""
    most = max((max(o.incidents.values(), default=0) for o in report.officers), default=0)
    state = "complete" if report.complete else f"running: figures up to {escape(report.as_of)}"
    rows = "".join(_officer_row(o, most) for o in report.officers)
    s = report.station
    station = ""
    if s is not None:
        station = (
            f"<p>{s.officers} officers · {s.incidents_total} incidents handled "
            f"({', '.join(f'{k} {v}' for k, v in s.incidents.items())}) · "
            f"{_num(s.duty_hours, 1)} h on duty · "
            f"{_num(s.distance_m / 1000, 1)} km patrolled · {_pct(s.inside_grid_share)} of assigned duty "
            f"inside the grid · call → on scene P50/P90 {_p(s.responses.call_to_on_scene)} s · "
            f"mean evaluation {_num(s.mean_score, 2)} ({s.evaluations}) · feedback {s.feedback}</p>"
        )
    grids = "".join(
        f"<tr><td>{escape(g.name)}</td><td>{escape(g.level)}</td>"
        f"<td class=n>{sum(g.incidents_reported.values())}</td><td class=n>{g.holders}</td>"
        f"<td class=n>{_num(g.assigned_duty_hours, 1)}</td><td class=n>{_pct(g.inside_grid_share)}</td>"
        f"<td class=n>{g.checkins.on_time}/{g.checkins.late}/{g.checkins.missing}</td></tr>"
        for g in report.grids
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Monthly report {escape(report.month)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Workload and performance, {escape(report.month)}</h1>"
        f'<p class="meta">{escape(report.start)} to {escape(report.end)} ({escape(report.timezone)}), '
        f"{state}; generated {escape(report.generated_at)} ({escape(report.trigger)}). "
        f"Ranked by {escape(report.ranking)}.</p>{station}"
        "<h2>Officers</h2><table><thead><tr><th>#</th><th>Officer</th><th>Chart</th><th>Incidents</th>"
        "<th>Offers acc/dec/t-o</th><th>Dispatch→en route P50/P90 s</th><th>En route→scene P50/P90 s</th>"
        "<th>Call→scene P50/P90 s</th><th>km</th><th>Duty h</th><th>Check-ins on time/late/missing</th>"
        "<th>Roll calls present/late/silent</th><th>Eval.</th><th>Feedback</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
        "<h2>Grids</h2><table><thead><tr><th>Grid</th><th>Level</th><th>Incidents reported</th>"
        "<th>Holders</th><th>Assigned duty h</th><th>Inside</th><th>Check-ins</th></tr></thead>"
        f"<tbody>{grids}</tbody></table></body></html>"
    )


def _officer_row(o: Officer, most: int) -> str:
    r = o.responses
    return (
        f"<tr><td class=n>{o.rank}</td><td>{escape(o.name)}<br><small>{escape(o.unit_id)} · "
        f"{escape(o.kind)}</small></td><td>{chart(o, most)}</td><td class=n>{o.incidents_total}</td>"
        f"<td class=n>{o.offers.accepted}/{o.offers.declined}/{o.offers.timed_out}</td>"
        f"<td class=n>{_p(r.dispatch_to_en_route)}</td><td class=n>{_p(r.en_route_to_on_scene)}</td>"
        f"<td class=n>{_p(r.call_to_on_scene)}</td><td class=n>{_num(o.distance_m / 1000, 1)}</td>"
        f"<td class=n>{_num(o.duty_hours, 1)}</td>"
        f"<td class=n>{o.checkins.on_time}/{o.checkins.late}/{o.checkins.missing}</td>"
        f"<td class=n>{o.rollcalls.present}/{o.rollcalls.late}/{o.rollcalls.silent}</td>"
        f"<td class=n>{_num(o.mean_score, 2)}</td><td class=n>{o.feedback}</td></tr>"
    )
