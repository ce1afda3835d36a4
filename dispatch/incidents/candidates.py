"""What a dispatch decision sees: the incident's situation and the candidate units around it.

`look` runs the recommendation cascade for one slot (a unit kind): the holders of the incident's community
and police grid, then the holders of the grids touching them (`cascade`), then the nearest suitable
available units anywhere; it also asks for the nearest units of any status, so a snapshot shows who was
nearer and why they were not chosen (busy, stale fix, wrong kind, already offered this incident).
`record_unfilled` stores the snapshot of a decision that found nobody.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dispatch.blocking import run_db
from dispatch.incidents.cascade import rings
from dispatch.incidents.core import Deps, progress_of, publish
from dispatch.incidents.places import NOWHERE, Around
from dispatch.incidents.policy import ANY_KIND
from dispatch.problems import NotFound
from geo import Neighbor
from store import incidents as db
from store import registry


@dataclass
class Seen:
    """What a decision saw: eligible candidates first-class, nearby ineligible units with the reason."""

    slot: str
    query: dict[str, Any]
    candidates: list[dict[str, Any]] = field(default_factory=list)
    excluded: dict[str, int] = field(default_factory=dict)

    @property
    def eligible(self) -> list[str]:
        """Eligible unit ids, in the cascade's pick order."""
        return [c["unit_id"] for c in self.candidates if c["eligible"]]


@dataclass(frozen=True)
class Situation:
    """An incident with its offers and units, read together."""

    row: db.IncidentRow
    offers: list[db.OfferRow]
    engaged: list[db.EngagementRow]

    @property
    def filled(self) -> list[str]:
        """Slots taken by pending offers and engaged units."""
        pending = [o.slot for o in self.offers if o.state == "pending"]
        return pending + [e.slot for e in self.engaged if e.released_at is None]

    @property
    def tried(self) -> set[str]:
        """Units ever offered this incident."""
        return {o.unit_id for o in self.offers}


def read_situation(store: db.IncidentStore, incident_id: str) -> Situation:
    """The incident, its offers and its units (NotFound when there is no such incident)."""
    with store.read() as conn:
        row = db.get_incident(conn, incident_id)
        if row is None:
            raise NotFound(f"no incident {incident_id}")
        return Situation(row, db.offers(conn, incident_id), db.engagements(conn, incident_id))


def _speed_mps(deps: Deps, kind: str) -> float:
    """The straight-line speed the ETA estimate assumes for a kind of unit (ApiSettings, as nearest uses)."""
    api = deps.api
    return {"police": api.eta_police_mps, "vehicle": api.eta_vehicle_mps}.get(kind, api.eta_auxiliary_mps)


def _entry(deps: Deps, n: Neighbor, now_s: float) -> dict[str, Any]:
    e = n.entry
    speed = _speed_mps(deps, e.kind)
    return {
        "unit_id": e.unit_id,
        "kind": e.kind,
        "status": e.status,
        "lon": e.lon,
        "lat": e.lat,
        "distance_m": round(n.distance_m, 1),
        "fix_age_s": round(max(0.0, now_s - e.ts_s), 1),
        "accuracy_m": e.accuracy_m,
        "eta_s": round(n.distance_m / speed, 1),
    }


async def surveyed(deps: Deps, row: db.IncidentRow) -> Around:
    """The incident's grids and who holds them and the grids touching them, now (the cascade's rings)."""
    return await run_db(deps.places.survey, row, deps.clock.now())


def _picked(item: dict[str, Any], rank: int, what: str) -> None:
    item.update(
        eligible=True,
        rank=rank,
        reason=f"#{rank} {what}: {item['distance_m']:.0f} m, fix {item['fix_age_s']:.0f} s old, "
        f"ETA ~{item['eta_s']:.0f} s",
    )


def look(deps: Deps, row: db.IncidentRow, slot: str, tried: set[str], around: Around = NOWHERE) -> Seen:
    """The units for `slot` in the cascade's order (the incident's grids' holders, their neighbours', then
    the nearest suitable available units anywhere), and the units around them that were not picked."""
    k = deps.policy.settings.recommend_k
    kinds = None if slot in (ANY_KIND, "extra") else (slot,)
    now_s = deps.clock.now()
    seen = Seen(
        slot,
        {
            "lon": row.lon,
            "lat": row.lat,
            "k": k,
            "slot": slot,
            "statuses": ["available"],
            "kinds": list(kinds) if kinds else None,
            "max_fix_age_s": deps.api.max_fix_age_s,
            "excluding_already_offered": sorted(tried),
            "grids": around.describe(),
        },
    )
    rank = 0
    listed: set[str] = set()
    for h in rings(deps, row, around, kinds, tried, now_s):
        listed.add(h.unit_id)
        if h.why is None and rank >= k:
            continue
        item: dict[str, Any] = {"unit_id": h.unit_id, "distance_m": None}
        if h.seen is not None:
            item = _entry(deps, h.seen, now_s)
        item.update(basis=h.basis, grid_id=h.grid.id, eligible=False, reason=f"{h.where}: {h.why}")
        if h.why is None:
            rank += 1
            _picked(item, rank, h.where)
        seen.candidates.append(item)
    found = deps.fleet.nearest(
        row.lon,
        row.lat,
        k + len(tried) + len(listed),
        statuses=("available",),
        kinds=kinds,
        max_age_s=deps.api.max_fix_age_s,
    )
    seen.excluded = dict(found.excluded)
    for n in found.neighbors:
        if n.entry.unit_id in listed:
            continue
        item = _entry(deps, n, now_s) | {"basis": "nearest"}
        if n.entry.unit_id in tried:
            seen.excluded["already_offered"] = seen.excluded.get("already_offered", 0) + 1
            item.update(eligible=False, reason="already offered this incident")
        elif rank < k:
            rank += 1
            _picked(item, rank, f"nearest available {n.entry.kind}")
        else:
            continue
        seen.candidates.append(item)
    _add_nearby(deps, row, seen, now_s)
    return seen


def _add_nearby(deps: Deps, row: db.IncidentRow, seen: Seen, now_s: float) -> None:
    """Also keep the nearest units of any status, so review sees who was nearer and why not chosen."""
    listed = {c["unit_id"] for c in seen.candidates}
    around = deps.fleet.nearest(row.lon, row.lat, deps.policy.settings.recommend_k, statuses=None)
    for n in around.neighbors:
        if n.entry.unit_id in listed:
            continue
        item = _entry(deps, n, now_s) | {"basis": "nearest"}
        if n.entry.status != "available":
            why = f"status {n.entry.status}"
        elif item["fix_age_s"] > deps.api.max_fix_age_s:
            why = f"stale fix ({item['fix_age_s']:.0f} s old)"
        else:
            why = f"kind {n.entry.kind} does not fill the {seen.slot} slot"
        item.update(eligible=False, reason=why)
        seen.candidates.append(item)
    # Picks first, in pick order; then the units passed over, nearest first (no position: last).
    seen.candidates.sort(
        key=lambda c: (
            not c["eligible"],
            c.get("rank", 0),
            c["distance_m"] is None,
            c["distance_m"] or 0.0,
            c["unit_id"],
        )
    )


async def unit_status(deps: Deps, unit_id: str) -> tuple[str, str]:
    """(kind, status) of a unit, from the live picture or else the registry; NotFound if unknown."""
    pos = deps.fleet.position(unit_id)
    unit = await run_db(registry.get_unit, deps.store.engine, unit_id)
    if unit is None:
        raise NotFound(f"no unit {unit_id}")
    return (pos.kind if pos is not None else unit.kind), unit.status


def snapshot_values(
    deps: Deps, seen: Seen, incident_id: str, actor: str, decision: str, chosen: str | None, at: float
) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "incident_id": incident_id,
        "at": at,
        "actor": actor,
        "decision": decision,
        "slot": seen.slot,
        "chosen_unit_id": chosen,
        "query": seen.query,
        "candidates": seen.candidates,
        "excluded": seen.excluded,
    }


async def record_unfilled(deps: Deps, sit: Situation, seen: Seen, actor: str, decision: str) -> None:
    """Store the snapshot of a decision that found nobody, and tell the consoles."""
    values = snapshot_values(deps, seen, sit.row.id, actor, decision, None, deps.clock.now())

    def insert() -> None:
        with deps.store.begin() as conn:
            db.insert_snapshot(conn, values)

    await run_db(insert)
    publish(
        deps,
        "no_unit_available",
        sit.row,
        progress_of(sit.row),
        values["at"],
        slot=seen.slot,
        snapshot_id=values["id"],
        excluded=seen.excluded,
    )


async def bound_devices(deps: Deps, unit_id: str) -> list[str]:
    """Devices bound to the unit now (an offer is sent to each)."""
    now = datetime.fromtimestamp(deps.clock.now(), UTC)
    found = await run_db(registry.bindings_of_unit, deps.store.engine, unit_id)
    return [b.device_id for b in found if b.active_at(now)]
