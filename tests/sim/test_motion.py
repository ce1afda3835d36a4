"""Device paths: random walks stay in their area at plausible speeds; real traces replay interpolated."""

from __future__ import annotations

import random
from pathlib import Path

from geo.distance import haversine_m
from sim.loadtest.motion import RandomWalk, TraceReplay, build_motions, load_traces
from sim.loadtest.plan import DEFAULT_AREA


def test_a_random_walk_stays_in_its_area_and_never_jumps() -> None:
    walk = RandomWalk(DEFAULT_AREA, random.Random(3))
    previous = walk.at(0.0)
    for step in range(1, 2000):
        s = walk.at(step * 0.5)
        min_lon, min_lat, max_lon, max_lat = DEFAULT_AREA
        assert min_lon <= s.lon <= max_lon and min_lat <= s.lat <= max_lat
        assert haversine_m(previous.lon, previous.lat, s.lon, s.lat) <= 15.0 * 0.5 + 1e-6
        previous = s


def test_real_traces_replay_interpolated_and_staggered(shared_data: Path) -> None:
    traces = load_traces(shared_data / "sf_cabspotting_2008-05-30_1h_pdt1700.csv.gz")
    assert len(traces) > 400 and all(len(t.t_s) >= 2 for t in traces)
    motions = build_motions(3, DEFAULT_AREA, seed=1, traces=traces)
    assert all(isinstance(m, TraceReplay) for m in motions)
    replay = motions[0]
    assert isinstance(replay, TraceReplay)
    tr = replay.trace
    for t_s in (0.0, 10.0, 300.0):
        s = replay.at(t_s)
        assert min(tr.lon) <= s.lon <= max(tr.lon) and min(tr.lat) <= s.lat <= max(tr.lat)
