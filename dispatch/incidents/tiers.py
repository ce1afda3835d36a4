"""The tiers' owners are told: when an incident is reported (tier 0) and whenever it moves up a tier.

Tier 0 (community_grid) is owned by the holders of the incident's community grid, tier 1 (police_grid) by
the holders of its police grid, the station and above by the dispatchers. Every notice is an
`incident.tier_notified` event on the bus: the consoles' stream (the dispatchers), MQTT
`outpost/v1/events/incident.tier_notified`, and an `incident_notice` to each owning unit's devices on
their downlink (`dispatch.incidents.notify`). A grid tier with no holder (or an incident outside every
grid) is told to the station: `owner` says who was told.
"""

from __future__ import annotations

from dispatch.blocking import run_db
from dispatch.incidents.candidates import bound_devices
from dispatch.incidents.core import Deps, publish
from dispatch.incidents.states import Progress
from store import incidents as db


async def notify_tier(deps: Deps, row: db.IncidentRow, progress: Progress, at: float, why: str) -> None:
    """Tell the owners of the incident's current tier (`progress.tier`) that it is theirs now."""
    grid, units = await run_db(deps.places.owners, row, progress.tier, at)
    devices = [d for unit_id in units for d in await bound_devices(deps, unit_id)]
    publish(
        deps,
        "tier_notified",
        row,
        progress,
        at,
        owner="units" if units else "station",
        grid_id=grid.id if grid else None,
        grid_name=grid.name if grid else None,
        units=units,
        devices=devices,
        description=row.description,
        why=why,
    )
