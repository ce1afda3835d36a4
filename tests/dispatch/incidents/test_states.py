"""The pure incident state machine: the happy path, the 409s, and invariants under any event sequence."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.incidents.states import (
    ACTIVE,
    ENGAGED,
    TERMINAL,
    TOP_TIER,
    Event,
    IllegalTransitionError,
    Progress,
    State,
    Transition,
    allowed_events,
    apply,
)


def run(events: list[Event], start: Progress | None = None) -> tuple[Progress, list[Transition]]:
    progress = start or Progress()
    recorded = []
    for event in events:
        progress, transition = apply(progress, event)
        recorded.append(transition)
    return progress, recorded


def test_the_closed_loop_in_order() -> None:
    events = [
        Event.OFFER,
        Event.TIMEOUT,
        Event.OFFER,
        Event.ACCEPT,
        Event.EN_ROUTE,
        Event.ARRIVE,
        Event.RESOLVE,
        Event.FEEDBACK,
        Event.EVALUATE,
        Event.CLOSE,
    ]
    progress, recorded = run(events)
    assert [t.to_state for t in recorded] == [
        State.OFFERED,
        State.NEW,
        State.OFFERED,
        State.DISPATCHED,
        State.EN_ROUTE,
        State.ON_SCENE,
        State.RESOLVED,
        State.FEEDBACK_RECORDED,
        State.EVALUATED,
        State.CLOSED,
    ]
    assert progress == Progress(State.CLOSED, 0, 0, 0)


def test_illegal_transition_names_the_current_state() -> None:
    with pytest.raises(IllegalTransitionError) as caught:
        apply(Progress(), Event.RESOLVE)
    assert caught.value.state == State.NEW
    assert "new" in str(caught.value)


def test_two_units_p1_the_incident_follows_the_first_unit() -> None:
    progress, recorded = run(
        [Event.OFFER, Event.OFFER, Event.ACCEPT, Event.EN_ROUTE, Event.ACCEPT, Event.ARRIVE, Event.EN_ROUTE]
    )
    assert progress == Progress(State.ON_SCENE, 0, 0, 2)
    # The second unit's en route after the first arrived is recorded but never moves the incident back.
    assert recorded[-1].from_state == recorded[-1].to_state == State.ON_SCENE


def test_escalation_climbs_the_tiers_and_stops_at_the_top() -> None:
    progress, _ = run([Event.ESCALATE] * TOP_TIER)
    assert progress.state == State.ESCALATED and progress.tier_name == "command_centre"
    with pytest.raises(IllegalTransitionError):
        apply(progress, Event.ESCALATE)
    # At the top a breach is recorded without changing anything.
    assert apply(progress, Event.SLA_BREACH)[0] == progress


def test_escalated_offer_lapses_back_to_escalated() -> None:
    progress, _ = run([Event.ESCALATE, Event.OFFER, Event.DECLINE])
    assert progress == Progress(State.ESCALATED, 1, 0, 0)


def test_escalation_keeps_an_engaged_incident_moving() -> None:
    progress, _ = run([Event.OFFER, Event.ACCEPT, Event.EN_ROUTE, Event.ESCALATE])
    assert progress.state == State.EN_ROUTE and progress.tier == 1


@pytest.mark.parametrize("end", [Event.CANCEL, Event.TRANSFER])
def test_ending_clears_offers_and_units_and_is_final(end: Event) -> None:
    progress, _ = run([Event.OFFER, Event.OFFER, Event.ACCEPT, end])
    assert progress.pending_offers == 0 and progress.engaged_units == 0 and progress.state in TERMINAL
    assert allowed_events(progress) == []


def check_invariants(p: Progress) -> None:
    assert p.pending_offers >= 0 and p.engaged_units >= 0 and 0 <= p.tier <= TOP_TIER
    if p.state == State.NEW:
        assert p.tier == 0 and p.pending_offers == 0 and p.engaged_units == 0
    if p.state == State.ESCALATED:
        assert p.tier > 0 and p.pending_offers == 0 and p.engaged_units == 0
    if p.state == State.OFFERED:
        assert p.pending_offers > 0 and p.engaged_units == 0
    if p.state in ENGAGED:
        assert p.engaged_units > 0
    if p.state not in ACTIVE:
        assert p.pending_offers == 0 and p.engaged_units == 0


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(list(Event)), max_size=60))
def test_no_sequence_of_events_reaches_an_illegal_state(events: list[Event]) -> None:
    progress = Progress()
    recorded: list[Transition] = []
    for event in events:
        try:
            after, transition = apply(progress, event)
        except IllegalTransitionError as exc:
            assert exc.state == progress.state
            assert event not in allowed_events(progress)
            continue
        # Every accepted event is recorded, and the record chains: each step starts where the last ended.
        assert transition.from_state == progress.state and transition.to_state == after.state
        assert transition.from_tier == progress.tier and transition.to_tier == after.tier
        if recorded:
            assert recorded[-1].to_state == transition.from_state
        recorded.append(transition)
        progress = after
        check_invariants(progress)


def test_a_merge_ends_the_duplicate_an_absorb_or_a_new_priority_keeps_the_state() -> None:
    offered, _ = run([Event.OFFER])
    merged, (t,) = run([Event.MERGE], offered)
    assert (merged.state, merged.pending_offers, t.to_state) == (State.MERGED, 0, State.MERGED)
    assert merged.state in TERMINAL and allowed_events(merged) == []
    for event in (Event.ABSORB, Event.CHANGE_PRIORITY):
        assert run([event], offered)[0] == offered
    resolved, _ = run([Event.OFFER, Event.ACCEPT, Event.ARRIVE, Event.RESOLVE])
    assert run([Event.ABSORB], resolved)[0] == resolved  # a late duplicate call still joins the record
    for event in (Event.MERGE, Event.CHANGE_PRIORITY):
        with pytest.raises(IllegalTransitionError, match="already resolved"):
            apply(resolved, event)
    with pytest.raises(IllegalTransitionError, match="finished"):
        apply(merged, Event.ABSORB)
