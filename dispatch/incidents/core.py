"""The shared machinery of the incident loop: dependencies, per-incident locks, and `step`, the one way an
incident changes (read it, run the state machine, conditional UPDATE, audit row: one transaction).

Steps of one incident are serialised in-process by an asyncio lock; across processes the incident's
`version` column (UPDATE … WHERE version = :seen) keeps the record consistent, and the unique indexes on
pending offers and engaged units keep a unit out of two incidents.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from dispatch.blocking import run_db
from dispatch.clock import Clock
from dispatch.incidents.arrival import ArrivalWatch
from dispatch.incidents.places import GridPlaces
from dispatch.incidents.policy import DispatchPolicy
from dispatch.incidents.ports import FleetPort, Publisher
from dispatch.incidents.states import (
    ACTIVE,
    TERMINAL,
    Event,
    IllegalTransitionError,
    Progress,
    State,
    Transition,
    apply,
)
from dispatch.incidents.timers import Timers
from dispatch.problems import Conflict, NotFound
from dispatch.settings import ApiSettings
from store import incidents as db

log = logging.getLogger(__name__)

# Effects run inside the step's transaction; they may return extra column changes for the incident row.
Effects = Callable[[Connection, db.IncidentRow, Progress], Mapping[str, Any] | None]
_STALE_RETRIES = 3


@dataclass
class Deps:
    """Everything the loop's parts share."""

    store: db.IncidentStore
    fleet: FleetPort
    bus: Publisher
    clock: Clock
    policy: DispatchPolicy
    api: ApiSettings  # stale-fix limit and ETA speeds, shared with the nearest API
    timers: Timers
    watch: ArrivalWatch
    places: GridPlaces  # the grids: incidents' places, the cascade's holders, the tiers' owners
    # Set by the service: what a breached SLA deadline does (escalation lives above this module).
    # ... called with the incident and the deadline its timer was armed for.
    on_sla_due: Callable[[str, float], Awaitable[None]] | None = None
    _locks: weakref.WeakValueDictionary[str, asyncio.Lock] = field(
        default_factory=weakref.WeakValueDictionary
    )
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def lock(self, incident_id: str) -> asyncio.Lock:
        """The lock serialising steps of one incident in this process."""
        found = self._locks.get(incident_id)
        if found is None:
            found = asyncio.Lock()
            self._locks[incident_id] = found
        return found

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Run `coro` in the background, tracked so `settle` and `close` can wait for it."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background step %s failed", task.get_name(), exc_info=task.exception())

    async def settle(self) -> None:
        """Wait until no timer is firing and no background step is running."""
        while True:
            await self.timers.settle()
            if not self._tasks:
                await self.timers.settle()
                if not self._tasks:
                    return
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Cancel timers and background steps."""
        await self.timers.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)


@dataclass(frozen=True)
class Stepped:
    """A committed step: the incident before it, the progress after it, the columns changed."""

    before: db.IncidentRow
    after: Progress
    transition: Transition
    changes: Mapping[str, Any]
    at: float
    unit_id: str | None = None  # the unit the step was about, if any


def progress_of(row: db.IncidentRow) -> Progress:
    """The state machine's view of a stored incident."""
    return Progress(State(row.state), row.tier, row.pending_offers, row.engaged_units)


def iso(epoch_s: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC (events and logs)."""
    return None if epoch_s is None else datetime.fromtimestamp(epoch_s, UTC).isoformat()


def conflict(exc: IllegalTransitionError) -> Conflict:
    """The 409 for an illegal transition, naming the current state."""
    return Conflict(str(exc), current_state=exc.state.value)


def _milestones(row: db.IncidentRow, after: Progress, at: float, deps: Deps) -> dict[str, Any]:
    changes: dict[str, Any] = {
        "state": after.state.value,
        "tier": after.tier,
        "pending_offers": after.pending_offers,
        "engaged_units": after.engaged_units,
    }
    firsts = {
        State.DISPATCHED: "dispatched_at",
        State.EN_ROUTE: "en_route_at",
        State.ON_SCENE: "on_scene_at",
        State.RESOLVED: "resolved_at",
    }
    column = firsts.get(after.state)
    if column is not None and getattr(row, column) is None:
        changes[column] = at
    if after.state in TERMINAL and row.ended_at is None:
        changes["ended_at"] = at
    sla_running = after.state in ACTIVE and after.state != State.ON_SCENE
    if not sla_running and row.sla_due_at is not None:
        changes["sla_due_at"] = None
    elif sla_running and after.tier != row.tier:
        changes["tier_entered_at"] = at
        changes["sla_due_at"] = deps.policy.sla.due_at(row.priority, after.tier, at)
    elif after.tier != row.tier:
        changes["tier_entered_at"] = at
    return changes


def _step_sync(
    deps: Deps,
    incident_id: str,
    event: Event,
    actor: str,
    reason: str | None,
    unit_id: str | None,
    offer_id: str | None,
    effects: Effects | None,
) -> Stepped:
    """`step`'s transaction (in a worker thread); a unit engaged elsewhere, even at commit, is a Conflict."""
    at = deps.clock.now()
    try:
        with deps.store.begin() as conn:
            row = db.get_incident(conn, incident_id, for_update=True)
            if row is None:
                raise NotFound(f"no incident {incident_id}")
            try:
                after, transition = apply(progress_of(row), event)
            except IllegalTransitionError as exc:
                raise conflict(exc) from exc
            changes = _milestones(row, after, at, deps)
            if effects is not None:
                changes.update(effects(conn, row, after) or {})
            version = db.update_incident(conn, incident_id, row.version, changes)
            db.insert_transition(
                conn,
                {
                    "incident_id": incident_id,
                    "seq": version,
                    "event": event.value,
                    "from_state": transition.from_state.value,
                    "to_state": transition.to_state.value,
                    "from_tier": transition.from_tier,
                    "to_tier": transition.to_tier,
                    "at": at,
                    "actor": actor,
                    "reason": reason,
                    "unit_id": unit_id,
                    "offer_id": offer_id,
                },
            )
    except db.UnitEngagedError as exc:
        raise Conflict(f"unit {exc} already holds an offer or is engaged in an incident") from exc
    return Stepped(row, after, transition, changes, at, unit_id)


async def step(
    deps: Deps,
    incident_id: str,
    event: Event,
    *,
    actor: str,
    reason: str | None = None,
    unit_id: str | None = None,
    offer_id: str | None = None,
    effects: Effects | None = None,
) -> Stepped:
    """Apply `event` to the incident in one transaction and re-arm its SLA timer; Conflict if illegal."""
    for _ in range(_STALE_RETRIES):
        try:
            stepped = await run_db(
                _step_sync, deps, incident_id, event, actor, reason, unit_id, offer_id, effects
            )
        except db.StaleIncidentError:
            continue
        _rearm_sla(deps, stepped)
        return stepped
    raise Conflict(f"incident {incident_id} kept changing under this request; retry")


def _rearm_sla(deps: Deps, stepped: Stepped) -> None:
    if "sla_due_at" not in stepped.changes:
        return
    due = stepped.changes["sla_due_at"]
    key = sla_key(stepped.before.id)
    if due is None:
        deps.timers.cancel(key)
    elif deps.on_sla_due is not None:
        arm_sla(deps, stepped.before.id, float(due))


def arm_sla(deps: Deps, incident_id: str, due_at_s: float) -> None:
    """Arm the incident's SLA deadline (replacing the previous one)."""
    handler = deps.on_sla_due
    if handler is not None:
        deps.timers.arm(sla_key(incident_id), due_at_s, lambda: handler(incident_id, due_at_s))


def sla_key(incident_id: str) -> str:
    """The timer name of an incident's SLA deadline."""
    return f"sla:{incident_id}"


def deadline_moved_later(stored_s: float, armed_s: float) -> bool:
    """Whether a stored deadline is later than the one its timer was armed for (then: re-arm, do not fire).

    Compared with the armed deadline, not with the wall clock: timers sleep on the monotonic clock, so
    after the wall clock is stepped back (NTP, an operator) `now < deadline` would hold for as long as the
    step, and an offer would wait an hour for an officer who never answers. A millisecond of slack
    absorbs the database's rounding of stored times."""
    return stored_s > armed_s + 0.001


def offer_key(offer_id: str) -> str:
    """The timer name of an offer's timeout."""
    return f"offer:{offer_id}"


def publish(deps: Deps, kind: str, row: db.IncidentRow, progress: Progress, at: float, **extra: Any) -> None:
    """Put an `incident.<kind>` event on the bus (consoles' stream; the device sink for unit events)."""
    event: dict[str, Any] = {
        "type": f"incident.{kind}",
        "at": iso(at),
        "incident_id": row.id,
        "state": progress.state.value,
        "tier": progress.tier_name,
        "priority": row.priority,
        "category": row.category,
        "lon": row.lon,
        "lat": row.lat,
        "address": row.address,
    }
    event.update(extra)
    deps.bus.publish(event)
