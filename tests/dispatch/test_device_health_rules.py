"""Device health's pure rules, with no database: the usual interval learned from a device's fixes (median,
floor, ceiling), offline raised after N of them and cleared by the next fix, only while watched, and a low
battery with hysteresis."""

from __future__ import annotations

from dispatch.live.health import DeviceHealth, HealthAlert, HealthRules

RULES = HealthRules(device_offline_factor=3.0, device_offline_min_s=20.0, device_offline_max_s=600.0)


def _on_duty(device_id: str) -> str | None:
    return "u1"


def _off_duty(device_id: str) -> str | None:
    return None


def _feed(h: DeviceHealth, times: list[float], battery: float | None = None) -> list[HealthAlert]:
    out: list[HealthAlert] = []
    for t in times:
        out += h.observe("d1", t, battery, t, _on_duty)
    return out


def _kinds(alerts: list[HealthAlert]) -> list[tuple[str, str]]:
    return [(a.kind, a.change) for a in alerts]


def test_offline_after_n_times_the_learned_interval_and_cleared_by_the_next_fix() -> None:
    h = DeviceHealth(RULES)
    _feed(h, [0.0, 10.0, 20.0, 30.0, 40.0])
    v = h.vitals("d1")
    assert v is not None and h.usual_interval_s(v) == 10.0 and h.limit_s(v) == 30.0
    assert h.judge(69.0, _on_duty) == []  # 29 s of silence
    raised = h.judge(71.0, _on_duty)
    assert _kinds(raised) == [("device_offline", "raised")]
    a = raised[0]
    assert (a.device_id, a.unit_id, a.at_s, a.last_fix_s, a.limit_s, a.usual_interval_s) == (
        "d1",
        "u1",
        71.0,
        40.0,
        30.0,
        10.0,
    )
    assert "no fix for 31 s" in a.reason and "3 × its usual 10 s" in a.reason
    assert h.judge(500.0, _on_duty) == []  # raised once
    cleared = h.observe("d1", 501.0, None, 501.0, _on_duty)
    assert _kinds(cleared) == [("device_offline", "cleared")] and cleared[0].reason == "a fix was heard again"
    # The one long outage is one gap of eight: the median keeps the usual interval.
    assert h.usual_interval_s(v) == 10.0
    assert h.judge(530.0, _on_duty) == [] and _kinds(h.judge(532.0, _on_duty)) == [
        ("device_offline", "raised")
    ]


def test_the_limit_is_held_between_the_floor_and_the_ceiling() -> None:
    h = DeviceHealth(RULES)
    _feed(h, [0.0])  # one fix: nothing learned, the ceiling
    v = h.vitals("d1")
    assert v is not None and h.usual_interval_s(v) is None and h.limit_s(v) == 600.0
    assert h.judge(599.0, _on_duty) == [] and len(h.judge(601.0, _on_duty)) == 1
    fast = DeviceHealth(RULES)
    _feed(fast, [0.0, 1.0, 2.0, 3.0])  # every second: 3 s would be noise, the floor is 20 s
    assert fast.limit_s(fast.vitals("d1")) == 20.0  # type: ignore[arg-type]
    slow = DeviceHealth(RULES)
    _feed(slow, [0.0, 300.0, 600.0])  # every 5 min: 15 min would be too late, the ceiling is 10 min
    assert slow.limit_s(slow.vitals("d1")) == 600.0  # type: ignore[arg-type]


def test_older_and_repeated_fixes_teach_nothing_and_do_not_clear() -> None:
    h = DeviceHealth(RULES)
    _feed(h, [0.0, 10.0, 20.0])
    assert _kinds(h.judge(60.0, _on_duty)) == [("device_offline", "raised")]
    assert h.observe("d1", 15.0, None, 61.0, _on_duty) == []  # a buffered older fix
    assert h.observe("d1", 20.0, None, 62.0, _on_duty) == []  # a redelivery
    v = h.vitals("d1")
    assert v is not None and v.offline_at_s == 60.0 and h.gaps_s(v) == [10.0, 10.0]


def test_only_watched_devices_go_offline_and_leaving_duty_clears() -> None:
    h = DeviceHealth(RULES)
    _feed(h, [0.0, 10.0, 20.0])
    assert h.judge(100.0, _off_duty) == []  # off duty: silence is nobody's business
    # Back on duty, still silent: looked at again after the floor.
    assert h.judge(110.0, _on_duty) == []
    assert _kinds(h.judge(120.0, _on_duty)) == [("device_offline", "raised")]
    assert [d for d, _ in h.raised()] == ["d1"]
    cleared = h.judge(130.0, _off_duty)
    assert _kinds(cleared) == [("device_offline", "cleared")] and "no longer watched" in cleared[0].reason
    assert list(h.raised()) == []


def test_low_battery_with_hysteresis_only_while_watched() -> None:
    h = DeviceHealth(RULES)

    def battery(t: float, pct: float, watched: bool = True) -> list[tuple[str, str]]:
        return _kinds(h.observe("d1", t, pct, t, _on_duty if watched else _off_duty))

    assert battery(0.0, 14.0, watched=False) == []  # off duty: not raised
    assert battery(1.0, 16.0) == []
    assert battery(2.0, 15.0) == [("battery_low", "raised")]
    assert battery(3.0, 14.0) == [] and battery(4.0, 17.0) == [] and battery(5.0, 19.9) == []  # the band
    assert battery(6.0, 20.0) == [("battery_low", "cleared")]
    assert battery(7.0, 19.0) == [] and battery(8.0, 12.0) == [("battery_low", "raised")]
    cleared = h.judge(9.0, _off_duty)
    assert _kinds(cleared) == [("battery_low", "cleared")] and cleared[0].battery_pct == 12.0


def test_a_judgement_costs_what_is_due_not_the_fleet() -> None:
    h = DeviceHealth(RULES)
    for i in range(1000):
        h.observe(f"d{i}", 0.0, None, 0.0, _on_duty)
        h.observe(f"d{i}", 10.0 + i, None, 10.0 + i, _on_duty)
    asked: list[str] = []

    def watching(device_id: str) -> str | None:
        asked.append(device_id)
        return "u"

    # Each device's limit is 3 × its own gap: d0 (gap 10 s) is due at 40 s, d1 (gap 11 s) at 44 s, ...
    assert [a.device_id for a in h.judge(44.0, watching)] == ["d0", "d1"]
    assert set(asked) == {"d0", "d1"}  # the other 998 are not even looked at
