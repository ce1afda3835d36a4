"""Start-up reconciliation of unit statuses with the incident record.

Claiming a unit (available → offered) and recording its offer are separate transactions; a crash or a lost
database in between can leave a unit "offered" with no pending offer. Nothing would ever free such a unit,
so `IncidentService.start` puts it back to available, through the fleet's compare-and-set (the change is
atomic, reaches the live picture, and names the actor). Engaged statuses (assigned, en_route, on_scene) are
left alone: a dispatcher may set them by hand for work outside Outpost's incidents.
"""

from __future__ import annotations

import logging

from dispatch.blocking import run_db
from dispatch.incidents.core import Deps
from store import incidents as db

log = logging.getLogger(__name__)

RECONCILE_ACTOR = "system:reconcile"


async def free_stranded_units(deps: Deps) -> list[str]:
    """Put units offered with no pending offer back to available; returns their ids.

    Run before this process makes offers. With several processes on one database, another one may be
    between its claim and its offer at this moment; that unit is freed too, and the database's unique index
    on pending offers still keeps it from holding two offers.
    """

    def read() -> list[tuple[str, str]]:
        with deps.store.read() as conn:
            return db.stranded_units(conn)

    freed: list[str] = []
    for unit_id, status in await run_db(read):
        if await deps.fleet.compare_and_set_status(unit_id, (status,), "available", actor=RECONCILE_ACTOR):
            log.warning(
                "unit %s was %s with no offer or engagement behind it: available again", unit_id, status
            )
            freed.append(unit_id)
    return freed
