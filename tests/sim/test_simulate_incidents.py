"""The incident feed: real SFPD incidents as calls for service, shifted to now and accelerated."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from shapely.geometry import Point, shape

from sim.simulate.build_demo_data import DISTRICTS_PATH
from sim.simulate.incidents import Call, IncidentFeed, load_incidents
from sim.simulate.roads import shipped_graph

START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def test_shipped_sample_is_one_friday_inside_the_road_graph() -> None:
    incidents = load_incidents()
    assert 100 <= len(incidents) <= 400
    west, south, east, north = shipped_graph().bbox
    assert all(west <= i.lon <= east and south <= i.lat <= north for i in incidents)
    # Friday 30 May 2008, 00:00-24:00 PDT (UTC-7)
    assert incidents[0].source_ts >= datetime(2008, 5, 30, 7, tzinfo=UTC)
    assert incidents[-1].source_ts < datetime(2008, 5, 31, 7, tzinfo=UTC)
    assert [i.source_ts for i in incidents] == sorted(i.source_ts for i in incidents)
    assert all(i.category and i.pd_district and i.address for i in incidents)


def test_feed_applies_the_shift_and_the_speedup() -> None:
    incidents = load_incidents()
    feed = IncidentFeed(incidents, start=START, speedup=60.0, repeat=False)
    calls = list(feed.calls())
    assert len(calls) == len(incidents)
    t0 = incidents[0].source_ts
    for call in calls:
        assert call.due - START == (call.incident.source_ts - t0) / 60.0
    assert calls[0].due == START
    assert calls[-1].due < START + timedelta(minutes=24)  # a day at 60x lasts 24 minutes


def test_due_returns_each_call_once_in_time_order() -> None:
    feed = IncidentFeed(load_incidents(), start=START, speedup=120.0, repeat=False)
    seen: list[Call] = []
    now = START
    while feed.next_due is not None:
        now += timedelta(seconds=7)
        batch = feed.due(now)
        assert all(c.due <= now for c in batch)
        seen.extend(batch)
    assert [c.due for c in seen] == sorted(c.due for c in seen)
    assert len({c.ref for c in seen}) == len(seen) == len(load_incidents())


def test_repeating_feed_starts_the_day_again() -> None:
    incidents = load_incidents()
    feed = IncidentFeed(incidents, start=START, speedup=1000.0)
    calls = [c for _, c in zip(range(len(incidents) + 1), feed.calls(), strict=False)]
    again = calls[len(incidents)]
    assert again.incident == incidents[0]
    assert again.due == START + timedelta(days=1) / 1000.0


def test_source_start_skips_to_a_time_of_day() -> None:
    incidents = load_incidents()
    evening = datetime(2008, 5, 31, 0, 0, tzinfo=UTC)  # 17:00 PDT
    feed = IncidentFeed(incidents, start=START, speedup=10.0, source_start=evening, repeat=False)
    first = next(feed.calls())
    assert first.incident.source_ts >= evening
    assert first.due == START + (first.incident.source_ts - evening) / 10.0


async def test_follow_yields_calls_as_the_injected_clock_reaches_them() -> None:
    clock = [START]

    async def sleep(s: float) -> None:
        clock[0] += timedelta(seconds=s)

    feed = IncidentFeed(load_incidents()[:20], start=START, speedup=30.0, repeat=False)
    got = [call async for call in feed.follow(now=lambda: clock[0], sleep=sleep)]
    assert len(got) == 20
    assert all(c.due <= clock[0] for c in got)
    assert [c.due for c in got] == sorted(c.due for c in got)


def test_bad_speedup_is_refused() -> None:
    with pytest.raises(ValueError, match="speedup"):
        IncidentFeed(load_incidents(), start=START, speedup=0)


def test_shipped_districts_cover_the_incidents() -> None:
    doc = json.loads(DISTRICTS_PATH.read_text(encoding="utf-8"))
    districts = {f["properties"]["district"]: shape(f["geometry"]) for f in doc["features"]}
    assert len(districts) == 10 and all(g.is_valid for g in districts.values())
    inside = sum(any(g.contains(Point(i.lon, i.lat)) for g in districts.values()) for i in load_incidents())
    assert inside >= 0.95 * len(load_incidents())
