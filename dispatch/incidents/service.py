"""`IncidentService`: the closed dispatch loop's public face (HTTP handlers and the composition root call it).

Report → recommend → offer → accept (or decline / time out → next nearest) → en route → on scene
(reported, or detected from telemetry) → resolved → feedback → evaluation → closed; plus cancel,
transfer and tiered escalation on SLA deadlines. Every step is one transaction with its audit row; every
decision stores what was seen; every step is published on the event bus.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import Engine

from dispatch.blocking import run_db
from dispatch.clock import Clock
from dispatch.incidents import amend, candidates, lifecycle, offers, reconcile, views
from dispatch.incidents import models as m
from dispatch.incidents.arrival import ArrivalWatch, Detection
from dispatch.incidents.core import Deps, Stepped, arm_sla, publish
from dispatch.incidents.places import GridPlaces
from dispatch.incidents.policy import ANY_KIND, open_slots, policy_from
from dispatch.incidents.ports import FleetPort, Publisher
from dispatch.incidents.states import ACTIVE, TIERS, Event, Progress
from dispatch.incidents.tiers import notify_tier
from dispatch.incidents.timers import Timers
from dispatch.problems import DomainError
from dispatch.settings import ApiSettings, DispatchSettings
from store import incidents as db
from store import registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceReply:
    """What became of a device's answer to an offer (for the MQTT side to log or acknowledge)."""

    ok: bool
    detail: str
    offer_id: str | None = None


class _Reply(msgspec.Struct):
    offer_id: str
    answer: str


class IncidentService:
    """Incidents and the dispatch loop over a database, the live fleet, an event bus and a clock."""

    def __init__(
        self,
        engine: Engine,
        fleet: FleetPort,
        bus: Publisher,
        clock: Clock,
        settings: DispatchSettings,
        api: ApiSettings | None = None,
    ) -> None:
        self.settings = settings
        self.deps = Deps(
            store=db.IncidentStore(engine),
            fleet=fleet,
            bus=bus,
            clock=clock,
            policy=policy_from(settings),
            api=api or ApiSettings(),
            timers=Timers(clock),
            watch=ArrivalWatch(settings.arrival_radius_m, settings.departure_distance_m),
            places=GridPlaces(engine),
        )
        self.deps.on_sla_due = self._sla_due
        self._unsubscribe: Any = None

    # ---- life ------------------------------------------------------------

    async def start(self) -> None:
        """Free units stranded by a crash, re-arm stored offer timeouts and SLA deadlines, watch engaged
        units, follow fleet moves."""
        deps = self.deps
        freed = await reconcile.free_stranded_units(deps)

        def read() -> tuple[list[db.OfferRow], list[tuple[str, float]], list[Any]]:
            with deps.store.read() as conn:
                return db.pending_offers(conn), db.sla_deadlines(conn), db.active_engagements(conn)

        pending, deadlines, engaged = await run_db(read)
        if self.settings.unsafe_forget_timers:
            log.warning("UNSAFE: timers of pending offers and SLA deadlines not re-armed (a test's control)")
            pending, deadlines = [], []
        for offer in pending:
            offers.arm_timeout(deps, offer.id, offer.expires_at)
        for incident_id, due in deadlines:
            arm_sla(deps, incident_id, due)
        for engagement, lon, lat in engaged:
            if engagement.state in ("assigned", "en_route"):
                deps.watch.watch(engagement.unit_id, lifecycle.watched_from(engagement, lon, lat))
        self._unsubscribe = deps.fleet.subscribe(self.on_fleet_event)
        log.info(
            "incident loop started: %d offers pending, %d SLA timers, %d units engaged, %d units freed",
            len(pending),
            len(deadlines),
            len(engaged),
            len(freed),
        )

    async def stop(self) -> None:
        """Stop following the fleet, cancel timers and background steps (deadlines stay stored)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        await self.deps.close()

    async def settle(self) -> None:
        """Wait until no timer or detected step is being processed (tests, after moving a ManualClock)."""
        await self.deps.settle()

    # ---- reading ------------------------------------------------------------

    async def get(self, incident_id: str) -> m.IncidentOut:
        """Everything recorded about one incident."""
        return await run_db(views.read_incident, self.deps.store, incident_id, self.deps.places)

    async def list_incidents(
        self, *, states: tuple[str, ...] = (), since: float | None = None, limit: int = 500
    ) -> m.IncidentList:
        """Incidents newest first."""
        return await run_db(views.list_summaries, self.deps.store, states=states, since=since, limit=limit)

    async def recommendations(self, incident_id: str) -> m.Recommendations:
        """Nearest suitable available units for each open slot (or any kind when all are filled)."""
        sit = await run_db(candidates.read_situation, self.deps.store, incident_id)
        grids = {"community_grid_id": sit.row.community_grid_id, "police_grid_id": sit.row.police_grid_id}
        if sit.row.state not in ACTIVE:
            return m.Recommendations(incident_id=incident_id, slots=[], **grids)
        slots = open_slots(self.deps.policy.needed(sit.row.priority), sit.filled) or [ANY_KIND]
        around = await candidates.surveyed(self.deps, sit.row)
        out = []
        for slot in slots:
            seen = candidates.look(self.deps, sit.row, slot, sit.tried, around)
            out.append(views.slot_recommendation(seen))
        return m.Recommendations(incident_id=incident_id, slots=out, **grids)

    # ---- report and dispatch ------------------------------------------------------------

    async def create(self, report: m.IncidentIn, *, actor: str) -> m.Created:
        """Record a reported incident; policy offers it at once when its priority is auto-dispatched."""
        deps = self.deps
        incident_id = str(uuid.uuid4())
        at = deps.clock.now()
        sla_due_at = deps.policy.sla.due_at(report.priority, 0, at)
        community_grid_id, police_grid_id = await run_db(deps.places.place, report.lon, report.lat)
        values: dict[str, Any] = {
            **msgspec.structs.asdict(report),  # lon, lat, category, priority, source, description, …
            "id": incident_id,
            "state": "new",
            "tier": 0,
            "tier_entered_at": at,
            "sla_due_at": sla_due_at,
            "created_by": actor,
            "reported_at": at,
            "community_grid_id": community_grid_id,
            "police_grid_id": police_grid_id,
        }
        reason = f"{report.priority} {report.category} reported via {report.source}"
        async with deps.lock(incident_id):
            row = await run_db(deps.store.create, values, actor=actor, at=at, reason=reason)
            arm_sla(deps, incident_id, sla_due_at)
            publish(
                deps,
                "created",
                row,
                Progress(),
                at,
                source=report.source,
                description=report.description,
                community_grid_id=community_grid_id,
                police_grid_id=police_grid_id,
            )
            await notify_tier(deps, row, Progress(), at, why="reported")
            if deps.policy.automatic(report.priority):
                await offers.fill_locked(deps, incident_id, decision="auto_offer")
            state = (await run_db(candidates.read_situation, deps.store, incident_id)).row.state
        return m.Created(id=incident_id, state=state)

    async def offer(self, incident_id: str, *, unit_id: str | None, actor: str) -> m.OfferOut:
        """Offer the incident to a named unit, or to the recommended one for its first open slot."""
        decision = "manual_offer" if unit_id else "recommended_offer"
        async with self.deps.lock(incident_id):
            offer = await offers.offer_locked(
                self.deps, incident_id, unit_id=unit_id, actor=actor, decision=decision
            )
        return views.offer_out(offer)

    async def accept(self, incident_id: str, offer_id: str, *, actor: str) -> Stepped:
        """The unit accepts: it is assigned, the incident is dispatched."""
        async with self.deps.lock(incident_id):
            stepped = await offers.accept_locked(self.deps, incident_id, offer_id, actor)
        if stepped.transition.event == Event.ACCEPT:
            self._check_position(str(stepped.unit_id))
        return stepped

    async def decline(
        self, incident_id: str, offer_id: str, *, actor: str, reason: str | None = None
    ) -> Stepped:
        """The unit declines: it is available again and the next nearest eligible unit is offered."""
        async with self.deps.lock(incident_id):
            return await offers.decline_locked(self.deps, incident_id, offer_id, actor, reason)

    async def withdraw(
        self, incident_id: str, offer_id: str, *, actor: str, reason: str | None = None
    ) -> Stepped:
        """A dispatcher takes a pending offer back."""
        async with self.deps.lock(incident_id):
            return await offers.withdraw_locked(self.deps, incident_id, offer_id, actor, reason)

    async def handle_device_reply(self, device_id: str, payload: bytes | str) -> DeviceReply:
        """A device's answer over MQTT: `{"offer_id": …, "answer": "accept"|"decline"}`. Never raises."""
        try:
            reply = msgspec.json.decode(payload, type=_Reply)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return DeviceReply(False, f"malformed reply: {exc}")
        if reply.answer not in ("accept", "decline"):
            return DeviceReply(
                False, f"answer must be accept or decline, got {reply.answer!r}", reply.offer_id
            )
        try:
            return await self._device_answer(device_id, reply)
        except DomainError as exc:
            return DeviceReply(False, exc.detail, reply.offer_id)

    async def _device_answer(self, device_id: str, reply: _Reply) -> DeviceReply:
        deps = self.deps

        def read() -> db.OfferRow | None:
            with deps.store.read() as conn:
                return db.get_offer(conn, reply.offer_id)

        offer = await run_db(read)
        if offer is None:
            return DeviceReply(False, f"no offer {reply.offer_id}", reply.offer_id)
        now = datetime.fromtimestamp(deps.clock.now(), UTC)
        unit_id = await run_db(registry.unit_for_device, deps.store.engine, device_id, now)
        if unit_id != offer.unit_id:
            return DeviceReply(False, f"device {device_id} is not bound to unit {offer.unit_id}", offer.id)
        actor = f"device:{device_id}"
        if reply.answer == "accept":
            await self.accept(offer.incident_id, offer.id, actor=actor)
        else:
            await self.decline(offer.incident_id, offer.id, actor=actor, reason="declined on the device")
        return DeviceReply(True, f"{reply.answer}ed", offer.id)

    # ---- after dispatch ------------------------------------------------------------

    async def unit_step(
        self, incident_id: str, event: Event, *, unit_id: str | None, actor: str, reason: str | None = None
    ) -> Stepped:
        """A unit's step reported by the unit or a dispatcher: Event.EN_ROUTE or Event.ARRIVE."""
        async with self.deps.lock(incident_id):
            return await lifecycle.unit_step_locked(
                self.deps, incident_id, event, unit_id=unit_id, actor=actor, reason=reason
            )

    async def resolve(self, incident_id: str, *, actor: str, reason: str | None = None) -> Stepped:
        """Handled on scene: units are released (available again)."""
        async with self.deps.lock(incident_id):
            return await lifecycle.end_locked(
                self.deps, incident_id, Event.RESOLVE, actor=actor, reason=reason
            )

    async def cancel(self, incident_id: str, *, actor: str, reason: str | None = None) -> Stepped:
        """Called off: offers withdrawn, units released."""
        async with self.deps.lock(incident_id):
            return await lifecycle.end_locked(
                self.deps, incident_id, Event.CANCEL, actor=actor, reason=reason
            )

    async def transfer(self, incident_id: str, *, to: str, actor: str, reason: str | None = None) -> Stepped:
        """Up to a higher tier when `to` names one (police_grid, station, …); else handed to another agency
        or jurisdiction: offers withdrawn, units released."""
        async with self.deps.lock(incident_id):
            if to in TIERS:
                return await lifecycle.transfer_up_locked(
                    self.deps, incident_id, TIERS.index(to), actor=actor, reason=reason
                )
            return await lifecycle.end_locked(
                self.deps, incident_id, Event.TRANSFER, actor=actor, reason=reason, transferred_to=to
            )

    async def escalate(self, incident_id: str, *, actor: str, reason: str | None = None) -> Stepped:
        """Hand the incident up one tier."""
        async with self.deps.lock(incident_id):
            return await lifecycle.escalate_locked(self.deps, incident_id, actor=actor, reason=reason)

    async def change_priority(
        self, incident_id: str, priority: str, *, actor: str, reason: str | None = None
    ) -> Stepped:
        """Re-rate the incident: audited, its SLA deadline moved to the new priority's target."""
        async with self.deps.lock(incident_id):
            return await amend.change_priority_locked(
                self.deps, incident_id, priority, actor=actor, reason=reason
            )

    async def merge(self, incident_id: str, *, into: str, actor: str, reason: str | None = None) -> Stepped:
        """Merge a duplicate report into the incident it duplicates (both locked, in id order)."""
        first, second = sorted((incident_id, into))
        async with self.deps.lock(first), contextlib.AsyncExitStack() as more:
            if second != first:  # one incident's lock is taken once (asyncio locks are not reentrant)
                await more.enter_async_context(self.deps.lock(second))
            return await amend.merge_locked(self.deps, incident_id, into, actor=actor, reason=reason)

    async def review(self, incident_id: str, body: m.FeedbackIn | m.EvaluationIn, *, actor: str) -> Stepped:
        """Record the handling officer's feedback (`FeedbackIn`) or the evaluation of the handling."""
        async with self.deps.lock(incident_id):
            return await lifecycle.review_locked(self.deps, incident_id, body, actor=actor)

    async def close(self, incident_id: str, *, actor: str, reason: str | None = None) -> Stepped:
        """Close an evaluated incident."""
        async with self.deps.lock(incident_id):
            return await lifecycle.close_locked(self.deps, incident_id, actor=actor, reason=reason)

    async def _sla_due(self, incident_id: str, armed_s: float) -> None:
        await lifecycle.sla_due(self.deps, incident_id, armed_s)

    # ---- telemetry ------------------------------------------------------------

    def on_fleet_event(self, event: Any) -> None:
        """Fleet subscriber (sync, on the loop): a watched unit's move may mean arrival or departure."""
        if getattr(event, "type", None) == "unit.moved" and event.unit_id in self.deps.watch:
            self._detect(event.unit_id, event.lon, event.lat)

    async def _detected(self, d: Detection) -> None:
        try:
            await self.unit_step(
                d.incident_id, d.event, unit_id=d.unit_id, actor="system:telemetry", reason=d.reason
            )
        except DomainError as exc:
            # E.g. the unit reported the step itself a moment earlier, or the incident was cancelled.
            log.info("detected %s of unit %s not recorded: %s", d.event.value, d.unit_id, exc.detail)
            self.deps.watch.retry(d.unit_id)

    def _check_position(self, unit_id: str) -> None:
        """Run arrival detection on the unit's current position (it may accept while already there)."""
        pos = self.deps.fleet.position(unit_id)
        if pos is not None:
            self._detect(unit_id, pos.lon, pos.lat)

    def _detect(self, unit_id: str, lon: float, lat: float) -> None:
        detection = self.deps.watch.check(unit_id, lon, lat)
        if detection is not None:
            self.deps.spawn(self._detected(detection), name=f"detected:{detection.unit_id}")
