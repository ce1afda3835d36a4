"""Multi-device fusion and device separation: the documented rule, by example and by property."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geo import DeviceFix, destination, fuse, haversine_m, separation

PRIORITIES = {"body_cam": 3, "phone": 2, "radio": 1}
NOW_S = 1_000.0
CAR = (-122.4194, 37.7749)


def fix(device_id: str, kind: str, age_s: float, accuracy_m: float | None = 5.0, *,
        at: tuple[float, float] = CAR) -> DeviceFix:  # fmt: skip
    return DeviceFix(device_id, at[0], at[1], NOW_S - age_s, accuracy_m, kind)


def by_id(*fixes: DeviceFix) -> dict[str, DeviceFix]:
    return {f.device_id: f for f in fixes}


def test_higher_priority_wins_among_fresh_fixes() -> None:
    chosen = fuse(
        by_id(fix("r", "radio", 1.0), fix("c", "body_cam", 5.0), fix("p", "phone", 2.0)), NOW_S, PRIORITIES
    )
    assert chosen is not None and chosen.device_id == "c"


def test_a_stale_high_priority_fix_loses_to_a_fresh_one() -> None:
    chosen = fuse(
        by_id(fix("c", "body_cam", 61.0), fix("r", "radio", 1.0)), NOW_S, PRIORITIES, max_age_s=60.0
    )
    assert chosen is not None and chosen.device_id == "r"


def test_an_old_but_not_stale_fix_loses_outside_the_recency_window() -> None:
    latest = by_id(fix("c", "body_cam", 50.0), fix("p", "phone", 1.0))
    chosen = fuse(latest, NOW_S, PRIORITIES, max_age_s=60.0, recency_window_s=15.0)
    assert chosen is not None and chosen.device_id == "p"
    chosen = fuse(latest, NOW_S, PRIORITIES, max_age_s=60.0, recency_window_s=60.0)
    assert chosen is not None and chosen.device_id == "c"


def test_coarse_fixes_compete_only_when_nothing_is_accurate() -> None:
    latest = by_id(fix("c", "body_cam", 1.0, accuracy_m=900.0), fix("r", "radio", 3.0, accuracy_m=None))
    chosen = fuse(latest, NOW_S, PRIORITIES, max_accuracy_m=100.0)
    assert chosen is not None and chosen.device_id == "r"  # unknown accuracy counts as acceptable
    chosen = fuse(by_id(fix("c", "body_cam", 1.0, accuracy_m=900.0)), NOW_S, PRIORITIES)
    assert chosen is not None and chosen.device_id == "c"


def test_ties_go_to_accuracy_then_recency_then_device_id() -> None:
    a = fix("a", "phone", 5.0, accuracy_m=8.0)
    b = fix("b", "phone", 5.0, accuracy_m=4.0)
    assert fuse(by_id(a, b), NOW_S, PRIORITIES) == b
    c = fix("c", "phone", 2.0, accuracy_m=4.0)
    assert fuse(by_id(a, b, c), NOW_S, PRIORITIES) == c
    d = fix("d", "phone", 2.0, accuracy_m=4.0)
    assert fuse(by_id(d, c), NOW_S, PRIORITIES) == c
    unknown = fix("u", "phone", 2.0, accuracy_m=None)
    assert fuse(by_id(unknown, a), NOW_S, PRIORITIES) == a  # known accuracy before unknown


def test_nothing_fresh_gives_none() -> None:
    assert fuse({}, NOW_S, PRIORITIES) is None
    assert fuse(by_id(fix("c", "body_cam", 120.0)), NOW_S, PRIORITIES, max_age_s=60.0) is None


fixes = st.builds(
    DeviceFix,
    device_id=st.sampled_from(["a", "b", "c", "d", "e"]),
    lon=st.floats(-122.5, -122.3),
    lat=st.floats(37.7, 37.8),
    ts_s=st.floats(NOW_S - 200.0, NOW_S + 5.0),
    accuracy_m=st.none() | st.floats(0.0, 1_000.0),
    device_kind=st.sampled_from(["body_cam", "phone", "radio", "unknown"]),
)
fix_maps = st.lists(fixes, max_size=5, unique_by=lambda f: f.device_id).map(lambda fs: by_id(*fs))


@given(fix_maps, st.floats(1.0, 120.0), st.floats(0.0, 60.0), st.floats(1.0, 500.0))
def test_fuse_picks_a_fresh_input_independent_of_order(
    latest: dict[str, DeviceFix], max_age_s: float, window_s: float, max_accuracy_m: float
) -> None:
    kwargs = {"max_age_s": max_age_s, "recency_window_s": window_s, "max_accuracy_m": max_accuracy_m}
    chosen = fuse(latest, NOW_S, PRIORITIES, **kwargs)
    fresh = [f for f in latest.values() if NOW_S - f.ts_s <= max_age_s]
    assert (chosen is None) == (not fresh)
    if chosen is not None:
        reordered = dict(reversed(list(latest.items())))
        assert fuse(reordered, NOW_S, PRIORITIES, **kwargs) == chosen
        accurate = [f for f in fresh if f.accuracy_m is None or f.accuracy_m <= max_accuracy_m]
        pool = accurate or fresh
        competing = [f for f in pool if max(g.ts_s for g in pool) - f.ts_s <= window_s]
        assert chosen in competing
        assert PRIORITIES.get(chosen.device_kind, 0) == max(
            PRIORITIES.get(f.device_kind, 0) for f in competing
        )


def test_a_phone_left_in_the_car_is_reported() -> None:
    officer = destination(*CAR, 45.0, 400.0)
    latest = by_id(fix("cam", "body_cam", 2.0, at=officer), fix("radio", "radio", 3.0, at=officer),
                   fix("phone", "phone", 1.0))  # fmt: skip
    pairs = separation(latest, threshold_m=150.0, max_age_s=30.0, now_s=NOW_S)
    assert [(a, b) for a, b, _ in pairs] == [("cam", "phone"), ("phone", "radio")]
    assert pairs[0][2] == pytest.approx(400.0, rel=1e-6)


def test_separation_allows_for_accuracy_and_ignores_stale_devices() -> None:
    apart = destination(*CAR, 90.0, 200.0)
    fuzzy = by_id(
        fix("cam", "body_cam", 1.0, accuracy_m=30.0, at=apart), fix("phone", "phone", 1.0, accuracy_m=30.0)
    )
    assert separation(fuzzy, threshold_m=150.0, max_age_s=30.0) == []  # 200 m < 150 + 30 + 30
    sharp = by_id(
        fix("cam", "body_cam", 1.0, accuracy_m=5.0, at=apart), fix("phone", "phone", 1.0, accuracy_m=5.0)
    )
    assert [p[:2] for p in separation(sharp, threshold_m=150.0, max_age_s=30.0)] == [("cam", "phone")]
    stale = by_id(fix("cam", "body_cam", 100.0, at=apart), fix("phone", "phone", 1.0))
    assert separation(stale, threshold_m=150.0, max_age_s=30.0, now_s=NOW_S) == []
    assert separation(stale, threshold_m=150.0, max_age_s=30.0) == []  # relative to the newest fix
    assert separation({}, threshold_m=1.0, max_age_s=1.0) == []


@given(fix_maps, st.floats(0.0, 20_000.0), st.floats(1.0, 300.0))
def test_separation_reports_exactly_the_distant_recent_pairs(
    latest: dict[str, DeviceFix], threshold_m: float, max_age_s: float
) -> None:
    pairs = separation(latest, threshold_m, max_age_s, now_s=NOW_S)
    recent = sorted((f for f in latest.values() if NOW_S - f.ts_s <= max_age_s), key=lambda f: f.device_id)
    expected = {
        (a.device_id, b.device_id)
        for a, b in itertools.combinations(recent, 2)
        if haversine_m(a.lon, a.lat, b.lon, b.lat)
        > threshold_m + (a.accuracy_m or 0.0) + (b.accuracy_m or 0.0)
    }
    assert {(a, b) for a, b, _ in pairs} == expected
    assert all(a < b for a, b, _ in pairs)
    assert [d for _, _, d in pairs] == sorted((d for _, _, d in pairs), reverse=True)
