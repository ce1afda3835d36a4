"""The incident loop's grids: where an incident is, who holds the grids around it, and who owns each tier.

`GridPlaces` keeps the current grids' `GridIndex` and their `geo.adjacency.Adjacency`, rebuilt only when a
grid's version changes (one small query of ids and versions tells). `survey` reads, for one incident, the
holders (assigned units, `store.duty`) of its community and police grid and of the grids touching them:
what the recommendation cascade and the tiers' notices need. Tier 0 is owned by the community grid's
holders, tier 1 by the police grid's, the station (and above) by the dispatchers on the event stream.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from geo.adjacency import Adjacency
from geo.grids import Grid, GridIndex
from store import duty, grids
from store import incidents as db

STATION_TIER = 2  # tiers from here up are the station's dispatchers (dispatch.incidents.states.TIERS)


@dataclass(frozen=True)
class Ring:
    """Holders of one ring of the cascade: `basis` names it, each holder with the grid it holds."""

    basis: str  # community_grid, police_grid, neighbouring_grid
    holders: tuple[tuple[str, Grid], ...]  # (unit id, its grid)


@dataclass(frozen=True)
class Around:
    """An incident's grids, their neighbours, and who holds them now."""

    community: Grid | None = None
    police: Grid | None = None
    rings: tuple[Ring, ...] = ()
    neighbours: tuple[str, ...] = ()  # ids of the grids touching the incident's two

    def describe(self) -> dict[str, Any]:
        """The grids as the decision snapshot's query keeps them."""
        return {
            "community_grid_id": self.community.id if self.community else None,
            "police_grid_id": self.police.id if self.police else None,
            "neighbouring_grid_ids": list(self.neighbours),
            "holders": {r.basis: [u for u, _ in r.holders] for r in self.rings},
        }

    def holders(self) -> Iterator[tuple[str, str, Grid]]:
        """(basis, unit id, grid) of every holder, in the cascade's order; a unit only once."""
        seen: set[str] = set()
        for ring in self.rings:
            for unit_id, grid in ring.holders:
                if unit_id not in seen:
                    seen.add(unit_id)
                    yield ring.basis, unit_id, grid


NOWHERE = Around()


@dataclass
class GridPlaces:
    """The current grids and their adjacency, computed once per version of the grids."""

    engine: Engine
    index: GridIndex = field(default_factory=lambda: GridIndex(()))
    adjacency: Adjacency = field(default_factory=lambda: Adjacency(GridIndex(())))
    _versions: tuple[tuple[str, int], ...] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh(self) -> GridIndex:
        """Re-read the grids if any changed since the last call (worker thread); the index now."""
        return self.current()[0]

    def current(self) -> tuple[GridIndex, Adjacency]:
        """The index and its adjacency, refreshed, taken together under the lock: another thread's refresh
        between two reads would pair an index with another version's adjacency."""
        versions = db.grid_versions(self.engine)
        with self._lock:
            if versions != self._versions:
                index = grids.load_index(self.engine)
                self.index, self.adjacency, self._versions = index, Adjacency(index), versions
            return self.index, self.adjacency

    def name(self, grid_id: str | None) -> str | None:
        """The current name of a grid (None: no such current grid)."""
        return self.index.get(grid_id).name if grid_id is not None and grid_id in self.index else None

    def place(self, lon: float, lat: float) -> tuple[str | None, str | None]:
        """(community grid id, police grid id) of a point, in the current grids (worker thread)."""
        found = self.refresh().locate(lon, lat)
        return (
            found.community.id if found.community else None,
            found.police.id if found.police else None,
        )

    def survey(self, row: db.IncidentRow, at_s: float) -> Around:
        """The incident's grids, their neighbours and their holders at `at_s` (worker thread)."""
        index, adjacency = self.current()
        own = [g for g in (row.community_grid_id, row.police_grid_id) if g is not None and g in index]
        if not own:
            return NOWHERE
        held: dict[str, list[str]] = {}
        for a in duty.assignments_at(self.engine, datetime.fromtimestamp(at_s, UTC)):
            held.setdefault(a.grid_id, []).append(a.unit_id)
        community = index.get(row.community_grid_id) if row.community_grid_id in own else None
        police = index.get(row.police_grid_id) if row.police_grid_id in own else None
        near = sorted({n for g in own for n in adjacency.neighbours(g)} - set(own))

        def ring(basis: str, grid_ids: list[str]) -> Ring:
            return Ring(basis, tuple((u, index.get(g)) for g in grid_ids for u in held.get(g, ())))

        rings = (
            ring("community_grid", [community.id] if community else []),
            ring("police_grid", [police.id] if police else []),
            ring("neighbouring_grid", near),
        )
        return Around(community, police, rings, tuple(near))

    def owners(self, row: db.IncidentRow, tier: int, at_s: float) -> tuple[Grid | None, list[str]]:
        """The grid owning `tier` of the incident and the units holding it at `at_s` (the station: none)."""
        if tier >= STATION_TIER:
            return None, []
        index = self.refresh()
        grid_id = row.community_grid_id if tier == 0 else row.police_grid_id
        if grid_id is None or grid_id not in index:
            return None, []
        held = duty.assignments_at(self.engine, datetime.fromtimestamp(at_s, UTC), grid_id=grid_id)
        return index.get(grid_id), sorted({a.unit_id for a in held})
