"""The open-loop pacer: exact counts, even spacing, catch-up after a late tick."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from sim.loadtest.pacer import Pacer


def test_releases_on_schedule_and_stops_at_the_limit() -> None:
    pacer = Pacer(rate_per_s=10.0, start_s=100.0, limit=25)
    assert pacer.due(100.0) == 1  # event 0 is due at the start
    assert pacer.due(100.05) == 0
    assert pacer.due(100.1) == 1
    assert pacer.next_due_s() == 100.2
    assert pacer.due(101.0) == 9  # a late tick releases everything that fell due meanwhile
    assert math.isclose(pacer.behind_s, 0.8)
    assert pacer.due(1000.0) == 14
    assert pacer.done and pacer.next_due_s() == math.inf
    assert pacer.due(2000.0) == 0


@given(
    rate=st.floats(0.5, 5000.0),
    ticks=st.lists(st.floats(0.0, 0.3), min_size=1, max_size=200),
)
def test_never_releases_more_than_the_schedule_allows(rate: float, ticks: list[float]) -> None:
    pacer = Pacer(rate, start_s=0.0, limit=10_000)
    now = 0.0
    released = 0
    for dt in ticks:
        now += dt
        released += pacer.due(now)
        assert released <= math.floor(now * rate + 1e-9) + 1
        assert released == min(10_000, math.floor(now * rate + 1e-9) + 1)
