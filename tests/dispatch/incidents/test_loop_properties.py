"""Any sequence of dispatcher, unit and clock actions on two incidents keeps the stored record consistent.

Hypothesis drives the real service on the embedded store. After every action: the incident's counters match
its offers and units, its state obeys the state machine's invariants, its audit trail is an unbroken chain
ending in its state, no unit holds more than one offer or engagement, and every unit's status says what it
is doing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dispatch.incidents import models as m
from dispatch.incidents.states import Event, Progress, State
from dispatch.problems import DomainError
from store import incidents as db
from store.engine import open_engine
from store.migrate import migrate
from store.settings import StoreSettings
from tests.dispatch.incidents.test_states import check_invariants
from tests.dispatch.incidents.world import World, point, world_on

UNITS = ("u0", "u1", "u2")
# The loop's forward steps appear twice, so sequences often get far (dispatched, on scene, closed).
FORWARD = (
    "offer_named",
    "offer_recommended",
    "accept",
    "en_route",
    "arrive",
    "resolve",
    "feedback",
    "evaluate",
)
ACTIONS = (*FORWARD, *FORWARD, "decline", "cancel", "escalate", "close", "tick")
STATUS_OF_STEP = {"assigned": "assigned", "en_route": "en_route", "on_scene": "on_scene"}

action = st.tuples(st.sampled_from(ACTIONS), st.integers(0, 1), st.integers(0, len(UNITS) - 1))


async def act(w: World, incident_id: str, name: str, unit: str) -> None:
    svc, who = w.service, "token:1:alice"
    got = await svc.get(incident_id)
    pending = [o for o in got.offers if o.state == "pending"]
    if name == "offer_named":
        await svc.offer(incident_id, unit_id=unit, actor=who)
    elif name == "offer_recommended":
        await svc.offer(incident_id, unit_id=None, actor=who)
    elif name in ("accept", "decline") and pending:
        answer = svc.accept if name == "accept" else svc.decline
        await answer(incident_id, pending[0].id, actor=who)
    elif name in ("en_route", "arrive"):
        event = Event.EN_ROUTE if name == "en_route" else Event.ARRIVE
        able = [u.unit_id for u in got.units if u.state in ("assigned", "en_route")]
        await svc.unit_step(incident_id, event, unit_id=able[0] if able else None, actor=who)
    elif name in ("resolve", "cancel", "escalate", "close"):
        await getattr(svc, name)(incident_id, actor=who)
    elif name == "feedback":
        await svc.review(incident_id, m.FeedbackIn(outcome="done", officer="PC 1"), actor=who)
    elif name == "evaluate":
        await svc.review(incident_id, m.EvaluationIn(score=3, evaluator="Sgt"), actor=who)
    elif name == "tick":
        await w.advance(61)


def check_record(w: World, incident_ids: list[str]) -> None:
    holding: dict[str, list[str]] = {}
    with w.service.deps.store.read() as conn:
        for incident_id in incident_ids:
            row = db.get_incident(conn, incident_id)
            assert row is not None
            offers, units = db.offers(conn, incident_id), db.engagements(conn, incident_id)
            pending = [o for o in offers if o.state == "pending"]
            engaged = [u for u in units if u.released_at is None]
            assert row.pending_offers == len(pending) and row.engaged_units == len(engaged)
            check_invariants(Progress(State(row.state), row.tier, row.pending_offers, row.engaged_units))
            trail = db.transitions(conn, incident_id)
            assert [t.seq for t in trail] == list(range(1, row.version + 1))
            for before, after in itertools.pairwise(trail):
                assert after.from_state == before.to_state and after.from_tier == before.to_tier
            assert trail[-1].to_state == row.state
            for o in pending:
                holding.setdefault(o.unit_id, []).append("offered")
            for u in engaged:
                holding.setdefault(u.unit_id, []).append(STATUS_OF_STEP[u.state])
    for unit in UNITS:
        doing = holding.get(unit, [])
        assert len(doing) <= 1, (unit, doing)
        assert w.status(unit) == (doing[0] if doing else "available"), (unit, doing)


async def play(url: str, actions: list[tuple[str, int, int]]) -> None:
    async with world_on(url) as w:
        for i, unit in enumerate(UNITS):
            w.add_unit(unit, at=point(90.0 * i, 300.0 * (i + 1)))
        incident_ids = [await w.report("P2"), await w.report("P3", at=point(45, 800))]
        check_record(w, incident_ids)
        for name, which, unit in actions:
            # A refused action must leave the record as it was: checked below like any other.
            with contextlib.suppress(DomainError):
                await act(w, incident_ids[which], name, UNITS[unit])
            await w.service.settle()
            check_record(w, incident_ids)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(actions=st.lists(action, min_size=4, max_size=24))
# The whole loop on one incident while the other takes the remaining units.
@example(
    actions=[
        ("offer_recommended", 1, 0),
        ("accept", 0, 0),
        ("en_route", 0, 0),
        ("accept", 1, 0),
        ("arrive", 0, 0),
        ("resolve", 0, 0),
        ("feedback", 0, 0),
        ("evaluate", 0, 0),
        ("close", 0, 0),
    ]
)
# Racing for one unit, declines and timeouts re-offering, escalation and cancellation mid-flight.
@example(
    actions=[
        ("offer_named", 1, 0),
        ("offer_named", 1, 0),
        ("decline", 0, 0),
        ("tick", 0, 0),
        ("accept", 1, 0),
        ("escalate", 1, 0),
        ("tick", 0, 0),
        ("accept", 0, 0),
        ("cancel", 1, 0),
        ("arrive", 0, 0),
        ("offer_named", 1, 2),
        ("resolve", 0, 0),
    ]
)
def test_any_sequence_of_actions_keeps_the_record_consistent(tmp_path: Path, actions: Any) -> None:
    url = f"sqlite:///{tmp_path / 'loop.db'}"
    (tmp_path / "loop.db").unlink(missing_ok=True)
    engine = open_engine(url, pool_size=1)
    migrate(engine, StoreSettings(database_url=url))
    engine.dispose()
    asyncio.run(play(url, actions))
