"""The run's report: a JSON document and the human summary printed at the end (built from the same dict)."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from sim.loadtest.result import RunResult

LATENCIES = (
    "publish_to_received",
    "publish_to_stored",
    "publish_to_visible",
    "api.nearest",
    "api.create_incident",
)
MEASURES = {
    "publish_to_received": "publish → Outpost's received_at stamp (lower bound of publish → stored)",
    "publish_to_stored": "publish → first watcher poll that saw the row committed (upper bound: + one poll "
    "interval and the poll's duration)",
    "publish_to_visible": "publish → first nearest-unit answer showing the probe unit at its new position "
    "(upper bound: + one poll interval)",
    "api.nearest": "duration of successful GET /v1/units/nearest requests (service time)",
    "api.create_incident": "duration of successful POST /v1/incidents requests (service time)",
}


def build_report(result: RunResult) -> dict[str, Any]:
    """The JSON report: counts, the oracle's verdict, rates, latency percentiles, processes, time series."""
    plan, ledger, rec = result.plan, result.ledger, result.recorder
    active_s = max(1e-9, result.fleet_done_s - result.started_s)
    stored_name = "stored" if rec.total("stored") else "received"
    report: dict[str, Any] = {
        "run_id": plan.run_id,
        "started_at": datetime.fromtimestamp(result.started_s, UTC).isoformat(),
        "plan": _plan_dict(result),
        "sent": ledger.messages,
        "sent_valid": ledger.sent_valid,
        "redelivered": ledger.redelivered,
        "injected": dict(sorted(ledger.injected.items())),
        "injected_total": ledger.injected_total,
        "offered_per_s": round(ledger.messages / active_s, 1),
        "generator_behind_s": round(result.generator_behind_s, 3),
        "delivery": result.delivery,
        "drained": result.drained,
        **_oracle_dict(result),
        **_throughput(result, stored_name),
        "latency_ms": {name: rec.summary(name) for name in LATENCIES if name in rec.histograms},
        "latency_measures": {name: MEASURES[name] for name in LATENCIES if name in rec.histograms},
        "api": result.dispatch,
        "probes": result.probes,
        "watcher": result.watcher,
        "processes": result.processes,
        "timeline": _timeline(result, stored_name),
        "notes": result.notes,
    }
    return report


def _plan_dict(result: RunResult) -> dict[str, Any]:
    plan = asdict(result.plan)
    plan["token"] = "***" if plan["token"] else ""
    plan["traces"] = str(plan["traces"]) if plan["traces"] else None
    plan["db_url"] = _redact(plan["db_url"])
    plan["mqtt_url"] = _redact(plan["mqtt_url"])
    return plan


def _redact(url: str) -> str:
    # Passwords in URLs never reach a report file.
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url


def _oracle_dict(result: RunResult) -> dict[str, Any]:
    v = result.verdict
    if v is None:
        return {
            "oracle": "not checked (no --db-url)",
            "passed": None,
            "stored": None,
            "lost": None,
            "duplicated": None,
            "rejected": None,
        }
    return {
        "oracle": "checked",
        "passed": v.passed,
        "stored": v.stored,
        "stored_rows": v.stored_rows,
        "lost": v.lost,
        "duplicated": v.duplicated,
        "unexpected_stored": v.unexpected,
        "bad_stored": dict(v.bad_stored),
        "rejected": dict(sorted(v.rejected.items())),
        "rejected_total": v.rejected_rows,
        "rejects_match": v.rejects_match,
        "lost_sample": v.lost_sample,
        "duplicated_sample": v.duplicated_sample,
    }


def _throughput(result: RunResult, stored_name: str) -> dict[str, Any]:
    rec = result.recorder
    stored = rec.total(stored_name)
    by_s = rec.counts.get(stored_name, {})
    if not stored or not by_s:
        return {"fixes_per_s": None, "fixes_per_s_steady": None}
    last_s = max(by_s) + 1
    # Steady state: the seconds between the first and the last of the fleet's run (ramp and drain excluded).
    fleet_seconds = int(result.fleet_done_s - result.started_s)
    steady = [by_s.get(s, 0) for s in range(1, max(2, fleet_seconds))]
    return {
        "fixes_per_s": round(stored / last_s, 1),
        "fixes_per_s_steady": round(statistics.median(steady), 1) if steady else None,
        "fixes_per_s_measured_by": stored_name,
    }


def _timeline(result: RunResult, stored_name: str) -> dict[str, Any]:
    rec = result.recorder
    seconds = max(rec.seconds, int(result.fleet_done_s - result.started_s) + 1)
    out: dict[str, Any] = {
        "second": list(range(seconds)),
        "sent_per_s": rec.series("sent", seconds),
        "stored_per_s": rec.series(stored_name, seconds),
        "stored_measured_by": stored_name,
    }
    for name in LATENCIES:
        if name in rec.histograms:
            out[f"{name}_p50_ms"] = _rounded(rec.percentile_series(name, 50, seconds))
            out[f"{name}_p99_ms"] = _rounded(rec.percentile_series(name, 99, seconds))
    for name, series in result.cpu_series.items():
        out[f"cpu_pct.{name}"] = series[:seconds]
    return out


def _rounded(values: list[float | None]) -> list[float | None]:
    return [None if v is None else round(v, 3) for v in values]


def write_json(report: dict[str, Any], path: Path) -> None:
    """Write the report as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def render_summary(report: dict[str, Any]) -> str:
    """The human summary printed at the end of a run."""
    plan = report["plan"]
    lines = [
        f"load test {report['run_id']}: {plan['devices']} devices × {plan['rate_hz']:g} Hz × "
        f"{plan['duration_s']:g} s, format {plan['format']}, QoS {plan['qos']}",
        f"  sent {report['sent']:,} messages ({report['sent_valid']:,} valid, "
        f"{report['injected_total']:,} bad, {report['redelivered']:,} redelivered) "
        f"at {report['offered_per_s']:,.0f}/s; "
        f"generator lag max {report['generator_behind_s'] * 1000:.0f} ms",
    ]
    lines += _oracle_lines(report)
    if report.get("fixes_per_s") is not None:
        lines.append(
            f"  throughput: {report['fixes_per_s']:,.0f} fixes/s stored overall, "
            f"{report['fixes_per_s_steady'] or 0:,.0f}/s steady (median second)"
        )
    for name, s in report["latency_ms"].items():
        if s.get("count"):
            lines.append(
                f"  {name:<20} n={s['count']:<8,} p50 {s['p50_ms']:8.1f}  p90 {s['p90_ms']:8.1f}  "
                f"p99 {s['p99_ms']:8.1f}  max {s['max_ms']:8.1f} ms"
            )
    for name, stats in report["api"].items():
        lines.append(
            f"  api {name}: {stats['ok']:,} ok, status {stats['status']}, {stats['errors']} errors, "
            f"{stats['dropped']} dropped (clients busy)"
        )
    for name, p in report["processes"].items():
        if p.get("available"):
            lines.append(
                f"  {name} (pid {p['pid']}): {p['cpu_cores_avg']:.2f} cores avg, "
                f"RSS {p['rss_mb_end']:.0f} MB (max {p['rss_mb_max_sampled']:.0f} MB)"
            )
    lines += [f"  note: {n}" for n in report["notes"]]
    return "\n".join(lines)


def _oracle_lines(report: dict[str, Any]) -> list[str]:
    if report["oracle"] != "checked":
        return [f"  oracle: {report['oracle']}"]
    verdict = "PASS" if report["passed"] else "FAIL"
    lines = [
        f"  oracle {verdict}: stored {report['stored']:,} of {report['sent_valid']:,} valid, "
        f"lost {report['lost']:,}, duplicated {report['duplicated']:,}, "
        f"unexpected {report['unexpected_stored']:,}, bad stored {report['bad_stored'] or 0}",
        f"  rejected {report['rejected_total']:,} {report['rejected']} vs injected {report['injected']}: "
        f"{'match' if report['rejects_match'] else 'MISMATCH'}",
    ]
    if report["lost_sample"]:
        lines.append(f"  lost e.g. {', '.join(report['lost_sample'][:5])}")
    return lines


def progress_line(
    elapsed_s: float, duration_s: float, sent: int, acked: int, stored: int, stored_p99_ms: float | None
) -> str:
    """One line of progress while the run goes on."""
    p99 = f"{stored_p99_ms:.0f} ms" if stored_p99_ms is not None else "-"
    return (
        f"[{elapsed_s:5.0f}/{duration_s:.0f} s] sent {sent:,}  acked {acked:,}  stored {stored:,}  "
        f"p99 publish→stored (last s) {p99}"
    )


def print_progress(out: TextIO, line: str, final: bool = False) -> None:
    """Rewrite the progress line in place on a terminal; plain lines elsewhere."""
    if out.isatty():
        out.write("\r" + line + ("\n" if final else ""))
    else:
        out.write(line + "\n")
    out.flush()
