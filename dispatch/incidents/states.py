"""The incident state machine: pure, synchronous, no I/O.

An incident's lifecycle state is one dimension; its escalation tier and two counters (offers awaiting an
answer, units engaged) are the others. `apply` is the only way to move an incident: it returns the next
`Progress` and the `Transition` to record, or raises `IllegalTransitionError` naming the current state.

Multi-unit incidents (P1: a police officer and an auxiliary) have one lifecycle: the incident is dispatched
when its first unit accepts, en route when its first unit leaves, on scene when its first unit arrives
(NFPA 1710 measures the first-arriving unit). Later units' steps are recorded as transitions that keep the
state (from == to), so the audit trail still has every step of every unit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class State(StrEnum):
    """Where an incident is in the dispatch loop."""

    NEW = "new"
    OFFERED = "offered"
    DISPATCHED = "dispatched"
    EN_ROUTE = "en_route"
    ON_SCENE = "on_scene"
    RESOLVED = "resolved"
    FEEDBACK_RECORDED = "feedback_recorded"
    EVALUATED = "evaluated"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    ESCALATED = "escalated"
    TRANSFERRED = "transferred"
    MERGED = "merged"  # a duplicate report, folded into the incident named by `merged_into`


class Event(StrEnum):
    """What can happen to an incident."""

    OFFER = "offer"
    ACCEPT = "accept"
    DECLINE = "decline"
    TIMEOUT = "timeout"
    WITHDRAW = "withdraw"  # a pending offer taken back by a dispatcher
    EN_ROUTE = "en_route"
    ARRIVE = "arrive"
    RESOLVE = "resolve"
    FEEDBACK = "feedback"
    EVALUATE = "evaluate"
    CLOSE = "close"
    CANCEL = "cancel"
    ESCALATE = "escalate"
    TRANSFER = "transfer"
    SLA_BREACH = "sla_breach"  # recorded at the top tier, where there is nobody left to escalate to
    CHANGE_PRIORITY = "change_priority"  # a dispatcher re-rates it; the state stays, the SLA follows
    MERGE = "merge"  # this incident is a duplicate: it ends, merged into another
    ABSORB = "absorb"  # a duplicate was merged into this incident: its state stays


TIERS = ("community_grid", "police_grid", "station", "command_centre")
TOP_TIER = len(TIERS) - 1

# Waiting for a unit: no unit has accepted yet.
AWAITING = frozenset({State.NEW, State.OFFERED, State.ESCALATED})
# A unit has accepted and the incident is not yet resolved.
ENGAGED = frozenset({State.DISPATCHED, State.EN_ROUTE, State.ON_SCENE})
ACTIVE = AWAITING | ENGAGED
# Nothing may happen any more.
TERMINAL = frozenset({State.CLOSED, State.CANCELLED, State.TRANSFERRED, State.MERGED})
_ENDING = {Event.CANCEL: State.CANCELLED, Event.TRANSFER: State.TRANSFERRED, Event.MERGE: State.MERGED}
_REVIEW = {
    Event.FEEDBACK: (State.RESOLVED, State.FEEDBACK_RECORDED),
    Event.EVALUATE: (State.FEEDBACK_RECORDED, State.EVALUATED),
    Event.CLOSE: (State.EVALUATED, State.CLOSED),
}
_STEP_ORDER = (State.DISPATCHED, State.EN_ROUTE, State.ON_SCENE)


@dataclass(frozen=True)
class Progress:
    """An incident as the state machine sees it."""

    state: State = State.NEW
    tier: int = 0  # index into TIERS
    pending_offers: int = 0  # offers awaiting an answer
    engaged_units: int = 0  # units that accepted and are not released

    @property
    def tier_name(self) -> str:
        """The tier's name, e.g. "police_grid"."""
        return TIERS[self.tier]


@dataclass(frozen=True)
class Transition:
    """One recorded step: what happened, from which state to which."""

    event: Event
    from_state: State
    to_state: State
    from_tier: int
    to_tier: int


class IllegalTransitionError(Exception):
    """`event` cannot happen in `state`; `why` says what is missing."""

    def __init__(self, state: State, event: Event, why: str) -> None:
        super().__init__(f"cannot {event.value} an incident that is {state.value}: {why}")
        self.state = state
        self.event = event
        self.why = why


def apply(progress: Progress, event: Event) -> tuple[Progress, Transition]:
    """The progress after `event`, and the transition to record; raises IllegalTransitionError."""
    if progress.state in TERMINAL:
        raise IllegalTransitionError(progress.state, event, "the incident is finished")
    after = _RULES[event](progress, event)
    return after, Transition(event, progress.state, after.state, progress.tier, after.tier)


def allowed_events(progress: Progress) -> list[Event]:
    """Every event `apply` accepts in `progress` (for the API's hints and for tests)."""
    allowed = []
    for event in Event:
        try:
            apply(progress, event)
        except IllegalTransitionError:
            continue
        allowed.append(event)
    return allowed


def awaiting_state(tier: int) -> State:
    """The state of an incident with no unit and no offer: new at the first tier, escalated above it."""
    return State.NEW if tier == 0 else State.ESCALATED


def _require(progress: Progress, event: Event, ok: bool, why: str) -> None:
    if not ok:
        raise IllegalTransitionError(progress.state, event, why)


def _offer(p: Progress, e: Event) -> Progress:
    _require(p, e, p.state in ACTIVE, "it is past dispatch")
    state = State.OFFERED if p.state in AWAITING else p.state
    return replace(p, state=state, pending_offers=p.pending_offers + 1)


def _accept(p: Progress, e: Event) -> Progress:
    _require(p, e, p.state in ACTIVE and p.pending_offers > 0, "no offer is pending")
    state = State.DISPATCHED if p.state in AWAITING else p.state
    return replace(p, state=state, pending_offers=p.pending_offers - 1, engaged_units=p.engaged_units + 1)


def _lapse(p: Progress, e: Event) -> Progress:
    """Decline, timeout, withdraw: one pending offer ends without a unit."""
    _require(p, e, p.state in ACTIVE and p.pending_offers > 0, "no offer is pending")
    pending = p.pending_offers - 1
    state = awaiting_state(p.tier) if p.state == State.OFFERED and pending == 0 else p.state
    return replace(p, state=state, pending_offers=pending)


def _unit_step(p: Progress, e: Event) -> Progress:
    """En route or arrived: the incident takes the step the first time a unit makes it."""
    _require(p, e, p.state in ENGAGED and p.engaged_units > 0, "no unit has accepted it")
    target = State.EN_ROUTE if e == Event.EN_ROUTE else State.ON_SCENE
    # Never backwards: a second unit leaving while the first is on scene keeps the incident on scene.
    if _STEP_ORDER.index(p.state) >= _STEP_ORDER.index(target):
        return p
    return replace(p, state=target)


def _resolve(p: Progress, e: Event) -> Progress:
    _require(p, e, p.state == State.ON_SCENE, "no unit is on scene")
    return Progress(State.RESOLVED, p.tier, 0, 0)


def _review(p: Progress, e: Event) -> Progress:
    before, after = _REVIEW[e]
    _require(p, e, p.state == before, f"it must be {before.value} first")
    return replace(p, state=after)


def _end(p: Progress, e: Event) -> Progress:
    _require(p, e, p.state in ACTIVE, "it is already resolved")
    return Progress(_ENDING[e], p.tier, 0, 0)


def _escalate(p: Progress, e: Event) -> Progress:
    _require(p, e, p.state in ACTIVE, "it is already resolved")
    _require(p, e, p.tier < TOP_TIER, f"it is already at the top tier ({TIERS[TOP_TIER]})")
    # Engaged incidents keep their state: a unit on its way goes on; the higher tier now answers for it.
    # An incident with an offer out stays offered: the state says what is pending, the tier who answers.
    state = State.ESCALATED if p.state in (State.NEW, State.ESCALATED) else p.state
    return replace(p, state=state, tier=p.tier + 1)


def _breach(p: Progress, e: Event) -> Progress:
    _require(p, e, p.state in ACTIVE, "it is already resolved")
    return p


def _absorb(p: Progress, e: Event) -> Progress:
    """A duplicate report joins the incident, whatever its (non-terminal) state: its record grows."""
    return p


_RULES = {
    Event.OFFER: _offer,
    Event.ACCEPT: _accept,
    Event.DECLINE: _lapse,
    Event.TIMEOUT: _lapse,
    Event.WITHDRAW: _lapse,
    Event.EN_ROUTE: _unit_step,
    Event.ARRIVE: _unit_step,
    Event.RESOLVE: _resolve,
    Event.FEEDBACK: _review,
    Event.EVALUATE: _review,
    Event.CLOSE: _review,
    Event.CANCEL: _end,
    Event.TRANSFER: _end,
    Event.ESCALATE: _escalate,
    Event.SLA_BREACH: _breach,
    Event.CHANGE_PRIORITY: _breach,  # the same rule: while someone still has to act on it
    Event.MERGE: _end,
    Event.ABSORB: _absorb,
}
