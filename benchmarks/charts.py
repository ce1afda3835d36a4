"""The suite's comparison charts (matplotlib PNG), drawn by run_all.py from the benchmarks' figures.

- http_designs.png: the three HTTP designs side by side (requests/s with 16 in flight, open-loop p99/p99.9);
- http_scaling.png: requests/s and p99 against units and against clients in flight, one line per design;
- ingest.png: Outpost's ingest against the raw pipeline (sustained and drain rates, publish → insert p99).

Each chart is drawn only when its benchmark ran; `draw` returns the files it wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLORS = {"outpost": "#1f6feb", "postgis": "#8250df", "redis": "#cf222e", "raw": "#6e7781"}


def draw(benchmarks: list[dict[str, Any]], folder: Path, machine: str) -> list[Path]:
    """Every chart the reported figures allow, into `folder`."""
    import matplotlib

    matplotlib.use("Agg")
    by_name = {b["name"]: b.get("figures") or {} for b in benchmarks}
    written = []
    runs = by_name.get("bench_http_designs", {}).get("runs") or []
    if runs:
        written.append(designs_chart(runs, folder / "http_designs.png", machine))
        written.append(scaling_chart(runs, folder / "http_scaling.png", machine))
    ingest = by_name.get("bench_ingest", {})
    if ingest.get("outpost") and ingest.get("raw"):
        written.append(ingest_chart(ingest, folder / "ingest.png", machine))
    return written


def _main_size(runs: list[dict[str, Any]]) -> int:
    """The fleet size every design was measured at, preferring 100k (the headline size)."""
    sizes = {r["units"] for r in runs if r["design"] == "outpost"}
    full = [s for s in sizes if {r["design"] for r in runs if r["units"] == s} >= {"postgis", "redis"}]
    pool = full or sorted(sizes)
    return 100_000 if 100_000 in pool else max(pool)


def designs_chart(runs: list[dict[str, Any]], path: Path, machine: str) -> Path:
    """Requests/s (closed loops) and open-loop latency, the designs side by side, at the main size."""
    import matplotlib.pyplot as plt

    units = _main_size(runs)
    here = [r for r in runs if r["units"] == units]
    designs = [d for d in COLORS if any(r["design"] == d for r in here)]
    closed = sorted({r["load"] for r in here if r["load"].startswith("c")}, key=lambda v: int(v[1:]))
    opened = sorted({r["load"] for r in here if r["load"].startswith("o")}, key=lambda v: float(v[1:]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    _bars(axes[0], here, designs, closed, "rps", "requests/s (closed loop, n in flight)")
    _bars(axes[1], here, designs, opened, "p99_ms", "p99 ms (open loop, from intended send; log)", goal=5.0)
    axes[1].set_yscale("log")
    fig.suptitle(f"Nearest over HTTP, {units:,} units, while fixes are ingested\n{machine}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _bars(ax: Any, runs: list[dict[str, Any]], designs: list[str], loads: list[str], key: str, title: str,
          goal: float | None = None) -> None:  # fmt: skip
    width = 0.8 / max(len(designs), 1)
    for j, design in enumerate(designs):
        mine = {r["load"]: r for r in runs if r["design"] == design}
        values = [mine[ld][key] if ld in mine else 0.0 for ld in loads]
        xs = [i + j * width for i in range(len(loads))]
        bars = ax.bar(xs, values, width, label=design, color=COLORS[design])
        wrong = [mine[ld].get("error_rate", 0.0) if ld in mine else 0.0 for ld in loads]
        ax.bar_label(
            bars, [f"{v:,.0f}\n{e:.0%} wrong" for v, e in zip(values, wrong, strict=True)], fontsize=7
        )
    ax.set_xticks([i + width * (len(designs) - 1) / 2 for i in range(len(loads))])
    ax.set_xticklabels([f"{ld[1:]} in flight" if ld[0] == "c" else f"{ld[1:]} req/s" for ld in loads])
    if goal is not None:
        ax.axhline(goal, color="black", linestyle="--", linewidth=0.8, label=f"goal {goal:g} ms")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)


def scaling_chart(runs: list[dict[str, Any]], path: Path, machine: str) -> Path:
    """Requests/s and p99 against units (16 in flight, or the most clients measured) and against clients."""
    import matplotlib.pyplot as plt

    closed = [r for r in runs if r["load"].startswith("c")]
    clients = sorted({int(r["load"][1:]) for r in closed})
    at = 16 if 16 in clients else (clients[-1] if clients else 0)
    units = _main_size(runs) if runs else 0
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    for design in (d for d in COLORS if any(r["design"] == d for r in closed)):
        mine = [r for r in closed if r["design"] == design]
        by_units = sorted((r for r in mine if int(r["load"][1:]) == at), key=lambda r: r["units"])
        by_clients = sorted((r for r in mine if r["units"] == units), key=lambda r: int(r["load"][1:]))
        for row, key in ((0, "rps"), (1, "p99_ms")):
            axes[row][0].plot([r["units"] for r in by_units], [r[key] for r in by_units], "o-",
                              label=design, color=COLORS[design])  # fmt: skip
            axes[row][1].plot([int(r["load"][1:]) for r in by_clients], [r[key] for r in by_clients], "o-",
                              label=design, color=COLORS[design])  # fmt: skip
    for row, what in ((0, "requests/s"), (1, "p99 ms")):
        axes[row][0].set_title(f"{what} against units ({at} in flight)", fontsize=9)
        axes[row][1].set_title(f"{what} against clients in flight ({units:,} units)", fontsize=9)
        for ax in axes[row]:
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
    fig.suptitle(f"Nearest over HTTP: scaling\n{machine}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def ingest_chart(ingest: dict[str, Any], path: Path, machine: str) -> Path:
    """Outpost's ingest against the raw pipeline: rates and publish → insert p99."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    kinds = ("outpost", "raw")
    for j, kind in enumerate(kinds):
        f = ingest[kind]
        axes[0].bar([0 + j * 0.4, 1 + j * 0.4], [f["steady_rate"], f["drain_rate"]], 0.4, label=kind,
                    color=COLORS[kind])  # fmt: skip
        axes[1].bar([j], [f["latency_ms"]["publish\u2192insert"][2]], 0.6, label=kind, color=COLORS[kind])
    axes[0].set_xticks([0.2, 1.2])
    axes[0].set_xticklabels(["sustained", "capacity (drain)"])
    axes[0].set_title("fixes/s", fontsize=9)
    axes[1].set_xticks(range(len(kinds)))
    axes[1].set_xticklabels(kinds)
    axes[1].set_title("publish → insert p99 ms (sustained)", fontsize=9)
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle(f"Ingest: Outpost against the raw pipeline\n{machine}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
