"""The recommendation cascade's grid rings: the holders of the incident's own grids first (the community
grid's auxiliary, the police grid's officer), then the holders of the grids touching them, each judged by
the same rules as the nearest search (available, fresh fix, the slot's kind, not offered it before) and
measured by the same great-circle distance, so metres and ETAs are what the nearest search would say.

Each holder comes back as a `Held`: its ring (`basis`), its grid, where it is, and why it cannot take the
slot (None: it can); `candidates` turns them into the snapshot's entries.
"""

from __future__ import annotations

from typing import NamedTuple

from dispatch.incidents.core import Deps
from dispatch.incidents.places import Around
from geo import Neighbor, UnitPosition, haversine_m
from geo.grids import Grid
from store import incidents as db

_RING_WORDS = {
    "community_grid": "holder of the incident's community grid",
    "police_grid": "holder of the incident's police grid",
    "neighbouring_grid": "holder of a neighbouring",
}


def _where(basis: str, grid: Grid) -> str:
    words = _RING_WORDS[basis]
    if basis == "neighbouring_grid":
        return f"{words} {grid.level} grid, {grid.name}"
    return f"{words}, {grid.name}"


def _unfit(
    deps: Deps, p: UnitPosition, kinds: tuple[str, ...] | None, tried: set[str], now_s: float
) -> str | None:
    """Why a holder cannot take the slot (the nearest search's rules), or None."""
    if p.unit_id in tried:
        return "already offered this incident"
    if p.status != "available":
        return f"status {p.status}"
    if now_s - p.ts_s > deps.api.max_fix_age_s:
        return f"stale fix ({now_s - p.ts_s:.0f} s old)"
    if kinds is not None and p.kind not in kinds:
        return f"kind {p.kind} does not fill the {kinds[0]} slot"
    return None


class Held(NamedTuple):
    """A holder the cascade saw: its ring, its grid, where it is (None: no live position), and why it
    cannot take the slot (None: it can); `where` words its ring and grid for the reason."""

    basis: str
    unit_id: str
    grid: Grid
    seen: Neighbor | None
    why: str | None
    where: str


def rings(
    deps: Deps,
    row: db.IncidentRow,
    around: Around,
    kinds: tuple[str, ...] | None,
    tried: set[str],
    now_s: float,
) -> list[Held]:
    """Every holder of the incident's grids and their neighbours, in the cascade's order, fit or not:
    the own grids' holders (community, then police), then the neighbours' holders nearest first."""
    own: list[Held] = []
    near: list[Held] = []
    for basis, unit_id, grid in around.holders():
        p = deps.fleet.position(unit_id)
        where = _where(basis, grid)
        if p is None:
            held = Held(basis, unit_id, grid, None, "no live position (off duty or no recent fix)", where)
        else:
            n = Neighbor(p, haversine_m(row.lon, row.lat, p.lon, p.lat))
            held = Held(basis, unit_id, grid, n, _unfit(deps, p, kinds, tried, now_s), where)
        (near if basis == "neighbouring_grid" else own).append(held)
    near.sort(key=lambda h: (h.seen is None, h.seen.distance_m if h.seen else 0.0, h.unit_id))
    return own + near
