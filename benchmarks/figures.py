"""The suite's one schema for a figure: what was measured, against which baseline, whether the goal is met.

    {"name", "value", "unit", "baseline_name", "baseline_value", "ratio", "goal", "met"}

`ratio` is always value / baseline_value (so > 1 means "more than the baseline": better for a throughput,
worse for a latency); `goal` says in words what must hold ("ratio >= 3", "value <= 5 ms"), `met` whether it
does (None when the figure has no goal). benchmarks/run_all.py collects every benchmark's figures into
benchmarks/results/figures.json: those a benchmark reports itself under "metrics", and those it derives here
from the figures of the benchmarks that predate the schema (`derive`).
"""

from __future__ import annotations

from typing import Any

FIELDS = ("name", "value", "unit", "baseline_name", "baseline_value", "ratio", "goal", "met")


def figure(
    name: str,
    value: float,
    unit: str,
    baseline_name: str | None = None,
    baseline_value: float | None = None,
    goal: str | None = None,
    met: bool | None = None,
) -> dict[str, Any]:
    """One figure in the suite's schema (the ratio computed here)."""
    ratio = value / baseline_value if baseline_value else None
    return {
        "name": name,
        "value": value,
        "unit": unit,
        "baseline_name": baseline_name,
        "baseline_value": baseline_value,
        "ratio": ratio,
        "goal": goal,
        "met": met,
    }


def measured(what: str, count: float) -> None:
    """Stop, with one line and exit status 1, when a run saw none of what it measures: a benchmark whose
    code under test changed (devices refused, a variant that no longer journals) must not print ratios."""
    if not count > 0:  # NaN too
        raise SystemExit(f"measured nothing: {what} = {count}; no figure printed (see the run's logs)")


def derive(benchmark: str, figures: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The figures of one benchmark's report, in the schema: its own "metrics", else what can be read from
    the known shapes of older reports (ingest, freshness, the in-process HTTP benchmark)."""
    if not figures:
        return []
    if isinstance(figures.get("metrics"), list):
        return [m for m in figures["metrics"] if isinstance(m, dict) and set(FIELDS) <= set(m)]
    derived = _DERIVERS.get(benchmark)
    try:
        return derived(figures) if derived else []
    except (KeyError, TypeError, ValueError):
        return []


def _ingest(f: dict[str, Any]) -> list[dict[str, Any]]:
    out, raw = f["outpost"], f.get("raw") or {}
    return [
        figure(
            "ingest sustained, outpost", out["steady_rate"], "fixes/s", "raw pipeline",
            raw.get("steady_rate"),
            "value >= 10000", out["steady_rate"] >= 10_000,
        ),
        figure(
            "ingest capacity (drain), outpost", out["drain_rate"], "fixes/s", "raw pipeline",
            raw.get("drain_rate"),
        ),
        figure(
            "ingest CPU per 1,000 fixes, outpost", out["cpu_s_per_1000"], "s", "raw pipeline",
            raw.get("cpu_s_per_1000"),
        ),
        figure(
            "ingest publish to insert p99, outpost", out["latency_ms"]["publish\u2192insert"][2], "ms",
            "raw pipeline", (raw.get("latency_ms") or {}).get("publish\u2192insert", [None] * 3)[2],
            "value <= 500 ms", out["latency_ms"]["publish\u2192insert"][2] <= 500,
        ),
    ]  # fmt: skip


def _copy(f: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        figure("FixWriter COPY", f["fixwriter_rows_per_s"], "rows/s", "plain COPY", f["baseline_rows_per_s"])
    ]


def _freshness(f: dict[str, Any]) -> list[dict[str, Any]]:
    visible, floor = f["visible"], f["broker_floor"]
    return [
        figure(
            "publish to visible in nearest p99",
            visible["p99_ms"],
            "ms",
            "broker floor p99",
            floor.get("p99_ms"),
            "value <= 100 ms",
            visible["p99_ms"] <= 100,
        )
    ]


_DERIVERS = {"bench_ingest": _ingest, "bench_freshness": _freshness, "bench_copy": _copy}
