"""Coverage gaps: a grid whose assigned unit is absent, off duty or busy elsewhere for longer than a limit.

Pure: the caller says, at an instant of its clock, who holds each grid and why that unit is not covering
it (None: it is), and gets back the gaps raised or cleared. A gap is raised once the grid has been
uncovered for `gap_s` without a break and cleared when its holder covers it again or the assignment ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from dispatch.live.out_of_grid import forget, lower


class Gap(NamedTuple):
    """A coverage gap raised or cleared for a grid."""

    grid_id: str
    unit_id: str | None
    kind: Literal["raised", "cleared"]
    at_s: float
    reason: str


@dataclass(slots=True)
class GridCover:
    """One assigned grid's coverage now."""

    unit_id: str
    uncovered_since_s: float | None = None
    reason: str | None = None  # why the holder is not covering it (None: covered)
    raised_at_s: float | None = None


class Coverage:
    """Every assigned grid's coverage; `judge` moves one on."""

    def __init__(self, gap_s: float) -> None:
        self.gap_s = gap_s
        self._grids: dict[str, GridCover] = {}

    def cover(self, grid_id: str) -> GridCover | None:
        """The grid's coverage (None: nobody holds it now)."""
        return self._grids.get(grid_id)

    def judge(self, grid_id: str, unit_id: str, now_s: float, *, uncovered: str | None) -> list[Gap]:
        """Take why the grid's holder `unit_id` is not covering it at `now_s` (None: it is)."""
        c = self._grids.get(grid_id)
        gaps: list[Gap] = []
        if c is not None and c.unit_id != unit_id:
            gaps += self._clear(grid_id, c, now_s, f"now held by {unit_id}")
            c = None
        if c is None:
            c = self._grids[grid_id] = GridCover(unit_id)
        if uncovered is None:
            gaps += self._clear(grid_id, c, now_s, f"covered by {unit_id}")
            c.uncovered_since_s = c.reason = None
            return gaps
        if c.uncovered_since_s is None:
            c.uncovered_since_s = now_s
        c.reason = uncovered
        if c.raised_at_s is None and now_s - c.uncovered_since_s >= self.gap_s:
            c.raised_at_s = now_s
            gaps.append(Gap(grid_id, unit_id, "raised", now_s, f"{unit_id} is {uncovered}"))
        return gaps

    def forget_others(self, keep: set[str], now_s: float) -> list[Gap]:
        """Stop judging every grid not in `keep` (nobody holds it now), clearing what was raised."""
        return forget(self._grids, keep, lambda g, c: self._clear(g, c, now_s, "no longer assigned"))

    def _clear(self, grid_id: str, c: GridCover, now_s: float, reason: str) -> list[Gap]:
        return [Gap(grid_id, c.unit_id, "cleared", now_s, reason)] if lower(c) else []
