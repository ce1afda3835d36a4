"""Which grids touch which: computed once for a set of grids (one version of each), then read by id.

Two grids of one level are neighbours when their boundaries come within `geo.grids.TOUCH_TOLERANCE_DEG`
(a shared border or a shared corner, despite the slivers real coverages have). One bulk STRtree query per
level finds every pair; the relation is symmetric and nobody is their own neighbour. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

import shapely

from geo.grids import LEVELS, TOUCH_TOLERANCE_DEG, GridIndex


class Adjacency:
    """The neighbours of every grid of a `GridIndex`, by id; build it once per version of the grids."""

    def __init__(self, index: GridIndex) -> None:
        found: dict[str, set[str]] = {g.id: set() for g in index.grids()}
        for level in LEVELS:
            grids = index.grids(level)
            if len(grids) < 2:
                continue
            tree = shapely.STRtree([g.geometry for g in grids])
            pairs = tree.query([g.geometry for g in grids], predicate="dwithin", distance=TOUCH_TOLERANCE_DEG)
            for i, j in zip(pairs[0].tolist(), pairs[1].tolist(), strict=True):
                if i != j:
                    found[grids[i].id].add(grids[j].id)
                    found[grids[j].id].add(grids[i].id)
        self._of: Mapping[str, tuple[str, ...]] = {k: tuple(sorted(v)) for k, v in found.items()}

    def __len__(self) -> int:
        return len(self._of)

    def neighbours(self, grid_id: str) -> tuple[str, ...]:
        """The ids of the grids of the same level that touch `grid_id`, sorted (empty for an unknown id)."""
        return self._of.get(grid_id, ())

    def pairs(self) -> int:
        """How many touching pairs there are (each counted once)."""
        return sum(len(v) for v in self._of.values()) // 2
