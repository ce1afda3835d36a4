"""What a cProfile of `outpost run` under nearest load says about the request path: the stages' cumulative
time per request (authentication, parsing, the query, presenting, the audit write, JSON), then the functions
that cost most in themselves."""

from __future__ import annotations

import pstats
from pathlib import Path

# (label, file suffix, function name): the stages of GET /v1/units/nearest.
STAGES = (
    ("whole handler (dispatch/routes/nearest.py)", "dispatch/routes/nearest.py", "nearest"),
    ("query: Fleet.nearest", "dispatch/fleet.py", "nearest"),
    ("present.nearest_unit", "dispatch/routes/present.py", "nearest_unit"),
    ("audit write (AuditLog.record)", "dispatch/audit.py", "record"),
    ("JSON (params.encode)", "dispatch/routes/params.py", "encode"),
    ("authentication (TokenAuthority.authenticate)", "dispatch/auth.py", "authenticate"),
)


def show(path: Path, top: int = 25) -> None:
    """Print the stages and the top functions by own time of the profile at `path`."""
    stats = pstats.Stats(str(path))
    table = stats.stats  # type: ignore[attr-defined]
    handler_calls = 0
    print(
        f"\nprofile of outpost run ({path}); µs per handler call (cumulative, cProfile's overhead included)"
    )
    for label, suffix, func in STAGES:
        hits = [(k, v) for k, v in table.items() if k[0].endswith(suffix) and k[2] == func]
        if not hits:
            print(f"  {label:48} (not seen)")
            continue
        calls = sum(v[1] for _, v in hits)
        cum_s = sum(v[3] for _, v in hits)
        handler_calls = handler_calls or calls
        print(f"  {label:48} {calls:8d} calls  {cum_s / max(handler_calls, 1) * 1e6:8.1f} µs/request")
    print(f"\ntop {top} functions by own time (whole process, all threads cProfile saw):")
    stats.sort_stats("tottime").print_stats(top)
    print(f"top {top} by cumulative time:")
    stats.sort_stats("cumulative").print_stats(top)
