"""The recommendation cascade's grid rings: the holders of the incident's own grids first (the community
grid's auxiliary, the police grid's officer), then the holders of the grids touching them, each judged by
the same rules as the nearest search (available, fresh fix, the slot's kind, not offered it before) and
measured by the same great-circle distance, so metres and ETAs are what the nearest search would say.

Each holder becomes a candidate entry (a dict, as the decision snapshot stores it) with `basis` (which ring),
`grid_id`, and `reason`: why it is picked, or why it is passed over.
"""

from __future__ import annotations

from typing import Any

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


def speed_mps(deps: Deps, kind: str) -> float:
    """The straight-line speed the ETA estimate assumes for a kind of unit (ApiSettings, as nearest uses)."""
    api = deps.api
    return {"police": api.eta_police_mps, "vehicle": api.eta_vehicle_mps}.get(kind, api.eta_auxiliary_mps)


def entry_of(deps: Deps, n: Neighbor, now_s: float) -> dict[str, Any]:
    """A unit as a candidate entry: where it is, how far, how fresh, how soon there."""
    e = n.entry
    return {
        "unit_id": e.unit_id,
        "kind": e.kind,
        "status": e.status,
        "lon": e.lon,
        "lat": e.lat,
        "distance_m": round(n.distance_m, 1),
        "fix_age_s": round(max(0.0, now_s - e.ts_s), 1),
        "accuracy_m": e.accuracy_m,
        "eta_s": round(n.distance_m / speed_mps(deps, e.kind), 1),
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


def ring_entries(
    deps: Deps,
    row: db.IncidentRow,
    around: Around,
    kinds: tuple[str, ...] | None,
    tried: set[str],
    now_s: float,
) -> list[dict[str, Any]]:
    """Every holder of the incident's grids and their neighbours, in the cascade's order, picked or not.

    Eligible entries carry `eligible: True` and come in pick order: the own grids' holders (community,
    then police), then the neighbours' holders nearest first. Entries passed over say why.
    """
    own: list[dict[str, Any]] = []
    near: list[dict[str, Any]] = []
    for basis, unit_id, grid in around.holders():
        p = deps.fleet.position(unit_id)
        where = _where(basis, grid)
        if p is None:
            item: dict[str, Any] = {"unit_id": unit_id, "eligible": False, "distance_m": None}
            item["reason"] = f"{where}: no live position (off duty or no recent fix)"
        else:
            item = entry_of(deps, Neighbor(p, haversine_m(row.lon, row.lat, p.lon, p.lat)), now_s)
            why = _unfit(deps, p, kinds, tried, now_s)
            item["eligible"] = why is None
            item["reason"] = where if why is None else f"{where}: {why}"
        item.update(basis=basis, grid_id=grid.id)
        (near if basis == "neighbouring_grid" else own).append(item)
    near.sort(key=lambda c: (c["distance_m"] is None, c["distance_m"] or 0.0, c["unit_id"]))
    return own + near
