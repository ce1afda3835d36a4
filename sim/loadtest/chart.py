"""A PNG of a run over time: throughput, pipeline latency, API latency and CPU, from the report's timeline.

Drawn with matplotlib's Agg canvas directly (no pyplot, no global backend state), so it works headless and
can be redrawn from a saved JSON report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def write_chart(report: dict[str, Any], path: Path) -> None:
    """Draw `report["timeline"]` into a PNG at `path`."""
    tl = report["timeline"]
    seconds = tl["second"]
    fig = Figure(figsize=(10, 11), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(4, 1, sharex=True)
    plan = report["plan"]
    fig.suptitle(
        f"Outpost load test {report['run_id']}: {plan['devices']} devices × {plan['rate_hz']:g} Hz, "
        f"{plan['format']}, QoS {plan['qos']}"
    )

    ax = axes[0]
    ax.plot(seconds, tl["sent_per_s"], label="sent / s", color="tab:blue")
    if report["oracle"] == "checked":  # without the store, nothing was seen stored: no line, not a zero line
        ax.plot(seconds, tl["stored_per_s"], label=f"{tl['stored_measured_by']} / s", color="tab:green")
    ax.set_ylabel("messages / s")
    ax.legend(loc="upper right")

    _latency_panel(
        axes[1],
        tl,
        seconds,
        ("publish_to_stored", "publish_to_received", "publish_to_visible"),
        "pipeline latency (ms)",
    )
    _latency_panel(axes[2], tl, seconds, ("api.nearest", "api.create_incident"), "API latency (ms)")

    ax = axes[3]
    for key, series in tl.items():
        if key.startswith("cpu_pct."):
            ax.plot(seconds[: len(series)], _gaps(series), label=key.removeprefix("cpu_pct."))
    ax.set_ylabel("CPU (% of one core)")
    ax.set_xlabel("seconds since start")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")


def _latency_panel(
    ax: Any, tl: dict[str, Any], seconds: list[int], names: tuple[str, ...], label: str
) -> None:
    drawn = False
    for name in names:
        for p, style in (("p50", "-"), ("p99", "--")):
            series = tl.get(f"{name}_{p}_ms")
            if series and any(v is not None for v in series):
                ax.plot(seconds[: len(series)], _gaps(series), style, label=f"{name} {p}")
                drawn = True
    ax.set_ylabel(label)
    if drawn:
        ax.set_yscale("log")
        ax.legend(loc="upper right", fontsize="small")
    else:
        ax.text(0.5, 0.5, "not measured in this run", ha="center", va="center", transform=ax.transAxes)


def _gaps(series: list[float | None]) -> list[float]:
    # matplotlib leaves a gap at NaN, which is the honest rendering of "nothing observed that second".
    return [float("nan") if v is None else float(v) for v in series]
