"""Device health: a device gone silent while its unit is on duty (offline), and a low battery.

Pure: the caller hands over every fix (`observe`: the device, the fix's time and battery, when it was
heard on the caller's clock) and, at instants of its clock, asks what is due (`judge`); both take a
callable saying which unit a device is watched for now (bound to an on-duty unit, else None) and return
the alerts raised or cleared.

Offline: a device's usual interval is the median of the gaps between its last `WINDOW` fixes (by the
fixes' own times, so a burst of buffered fixes teaches its real cadence, and one long outage does not
stretch it); it is offline once nothing newer has been heard for `device_offline_factor` × that
interval, held between `device_offline_min_s` and `device_offline_max_s` (the ceiling when nothing is
learned yet). The next newer fix clears it. Only silence is looked at, not places, so a heap of
deadlines (one live entry a device) makes a judgement cost what is due, not the fleet.

Low battery: raised at or below `battery_low_pct`, cleared only at `battery_low_pct + battery_hysteresis_pct`
or above, so a battery hovering around the threshold raises once. Both alerts are cleared, with the reason,
when the device stops being watched (its unit off duty, the device unbound or disabled).
"""

from __future__ import annotations

import heapq
import math
import statistics
from array import array
from collections.abc import Callable, Iterator
from typing import Literal, NamedTuple

import msgspec

# Gaps between fixes the usual interval is the median of. More: slower to follow a device whose
# cadence was changed (set_interval), steadier against a few late fixes.
WINDOW = 8

Kind = Literal["device_offline", "battery_low"]
Watching = Callable[[str], str | None]  # device id -> the unit it is watched for now, or None


class HealthRules(NamedTuple):
    """The thresholds, named as the settings (dispatch.settings.ApiSettings) that say what each trades."""

    device_offline_factor: float = 3.0
    device_offline_min_s: float = 60.0
    device_offline_max_s: float = 900.0
    battery_low_pct: float = 15.0
    battery_hysteresis_pct: float = 5.0


class HealthAlert(NamedTuple):
    """A device health alert raised or cleared."""

    kind: Kind
    change: Literal["raised", "cleared"]
    device_id: str
    unit_id: str | None
    at_s: float
    reason: str
    last_fix_s: float | None = None  # offline: the newest fix's own time
    limit_s: float | None = None  # offline: the silence allowed
    usual_interval_s: float | None = None  # offline: learned from its fixes (None: not yet)
    battery_pct: float | None = None


class Vitals(msgspec.Struct, gc=False):
    """What is known of one device's health.

    Untracked by the garbage collector (no references but strings, numbers and a float array): one a
    device, touched by every fix, they would otherwise make each collection walk the fleet (measured in
    benchmarks/bench_device_health.py).
    """

    unit_id: str | None  # the unit it was watched for when an alert was last raised
    last_ts_s: float  # the newest fix's own time
    heard_s: float  # when the newest fix was heard, on the caller's clock
    ring_s: array[float] = msgspec.field(default_factory=lambda: array("d", bytes(8 * WINDOW)))
    gaps_seen: int = 0  # gaps ever written to the ring (the next goes to gaps_seen % WINDOW)
    battery_pct: float | None = None
    due_s: float | None = None  # when its live entry in the heap of deadlines is due (None: none)
    offline_at_s: float | None = None  # raised at
    battery_low_at_s: float | None = None  # raised at


class DeviceHealth:
    """Every heard device's vitals; see the module docstring."""

    def __init__(self, rules: HealthRules) -> None:
        self.rules = rules
        self._devices: dict[str, Vitals] = {}
        self._deadlines: list[tuple[float, str]] = []  # (when to look at it, device id)
        self._raised: set[str] = set()  # devices with an alert up

    def vitals(self, device_id: str) -> Vitals | None:
        """The device's vitals (None: never heard)."""
        return self._devices.get(device_id)

    def raised(self) -> Iterator[tuple[str, Vitals]]:
        """The devices with an alert up now."""
        return ((d, self._devices[d]) for d in sorted(self._raised))

    def usual_interval_s(self, v: Vitals) -> float | None:
        """The median gap between the device's recent fixes (None: fewer than two fixes heard)."""
        return statistics.median(self.gaps_s(v)) if v.gaps_seen else None

    def gaps_s(self, v: Vitals) -> list[float]:
        """The gaps between the device's recent fixes, in no particular order."""
        return list(v.ring_s[: min(v.gaps_seen, WINDOW)])

    def limit_s(self, v: Vitals) -> float:
        """How long the device may stay silent before it is offline."""
        r, usual = self.rules, self.usual_interval_s(v)
        wanted = r.device_offline_max_s if usual is None else r.device_offline_factor * usual
        return min(max(wanted, r.device_offline_min_s), r.device_offline_max_s)

    def observe(
        self, device_id: str, ts_s: float, battery_pct: float | None, heard_s: float, watching: Watching
    ) -> list[HealthAlert]:
        """Take one fix of the device, heard at `heard_s`; an older or repeated one says nothing.

        The hot path: no median here, and `watching` is asked only when a low battery may be raised. A
        device with no deadline queued gets one at the floor; `judge` moves it to the learned limit.
        """
        v = self._devices.get(device_id)
        alerts: list[HealthAlert] = []
        if v is None:
            v = self._devices[device_id] = Vitals(None, ts_s, heard_s)
        elif ts_s > v.last_ts_s:
            v.ring_s[v.gaps_seen % WINDOW] = ts_s - v.last_ts_s
            v.gaps_seen += 1
            v.last_ts_s = ts_s
            if heard_s > v.heard_s:
                v.heard_s = heard_s
            if v.offline_at_s is not None:
                alerts.append(self._offline(device_id, v, "cleared", heard_s, "a fix was heard again"))
        else:
            return alerts
        if v.due_s is None:
            self._queue(device_id, v, v.heard_s + self.rules.device_offline_min_s)
        if battery_pct is not None:
            alerts += self._battery(device_id, v, battery_pct, heard_s, watching)
        return alerts

    def judge(self, now_s: float, watching: Watching) -> list[HealthAlert]:
        """Raise every watched device silent past its limit; clear what is up for the ones not watched."""
        alerts: list[HealthAlert] = []
        while self._deadlines and self._deadlines[0][0] <= now_s:
            at_s, device_id = heapq.heappop(self._deadlines)
            v = self._devices[device_id]
            if v.due_s != at_s:
                continue  # superseded by an earlier entry, already handled
            v.due_s = None
            if v.offline_at_s is not None:
                continue  # up until a fix is heard (which queues it again) or it is no longer watched
            due_s = v.heard_s + self.limit_s(v)
            if due_s > now_s:
                self._queue(device_id, v, due_s)
            elif (unit_id := watching(device_id)) is None:
                # Not watched (off duty): looked at again later.
                self._queue(device_id, v, now_s + self.rules.device_offline_min_s)
            else:
                v.unit_id = unit_id
                alerts.append(self._offline(device_id, v, "raised", now_s, self._silence(v, now_s)))
        for device_id in sorted(self._raised):
            if watching(device_id) is None:
                alerts += self.forget(device_id, now_s, "no longer watched (unit off duty or device unbound)")
        return alerts

    def forget(self, device_id: str, now_s: float, reason: str) -> list[HealthAlert]:
        """Clear what is up for the device, with `reason`; its vitals stay (it may come back on duty)."""
        v = self._devices.get(device_id)
        if v is None:
            return []
        alerts = []
        if v.offline_at_s is not None:
            alerts.append(self._offline(device_id, v, "cleared", now_s, reason))
            self._queue(device_id, v, now_s + self.rules.device_offline_min_s)
        if v.battery_low_at_s is not None:
            alerts.append(self._low(device_id, v, "cleared", now_s, reason))
        return alerts

    # ---- the two alerts ----------------------------------------------------------------------------------

    def _silence(self, v: Vitals, now_s: float) -> str:
        usual = self.usual_interval_s(v)
        factor = self.rules.device_offline_factor
        learned = f"{factor:g} × its usual {usual:.0f} s" if usual else "nothing learned"
        return f"no fix for {now_s - v.heard_s:.0f} s (limit {self.limit_s(v):.0f} s: {learned})"

    def _offline(
        self, device_id: str, v: Vitals, change: Literal["raised", "cleared"], at_s: float, reason: str
    ) -> HealthAlert:
        v.offline_at_s = at_s if change == "raised" else None
        self._mark(device_id, v)
        return HealthAlert(
            "device_offline",
            change,
            device_id,
            v.unit_id,
            at_s,
            reason,
            last_fix_s=v.last_ts_s,
            limit_s=self.limit_s(v),
            usual_interval_s=self.usual_interval_s(v),
            battery_pct=v.battery_pct,
        )

    def _battery(
        self, device_id: str, v: Vitals, pct: float, at_s: float, watching: Watching
    ) -> list[HealthAlert]:
        v.battery_pct = pct
        low = self.rules.battery_low_pct
        if v.battery_low_at_s is None and pct <= low and (unit_id := watching(device_id)) is not None:
            v.unit_id = unit_id
            return [self._low(device_id, v, "raised", at_s, f"battery at {pct:g} % (threshold {low:g} %)")]
        if v.battery_low_at_s is not None and pct >= low + self.rules.battery_hysteresis_pct:
            return [self._low(device_id, v, "cleared", at_s, f"battery back at {pct:g} %")]
        return []

    def _low(
        self, device_id: str, v: Vitals, change: Literal["raised", "cleared"], at_s: float, reason: str
    ) -> HealthAlert:
        v.battery_low_at_s = at_s if change == "raised" else None
        self._mark(device_id, v)
        pct = v.battery_pct
        return HealthAlert("battery_low", change, device_id, v.unit_id, at_s, reason, battery_pct=pct)

    def _mark(self, device_id: str, v: Vitals) -> None:
        if v.offline_at_s is None and v.battery_low_at_s is None:
            self._raised.discard(device_id)
        else:
            self._raised.add(device_id)

    def _queue(self, device_id: str, v: Vitals, at_s: float) -> None:
        # One live entry a device: a later deadline is found when the earlier one comes due (judge queues
        # it again); an earlier one (the limit learned shorter) supersedes it.
        if math.isfinite(at_s) and (v.due_s is None or at_s < v.due_s):
            heapq.heappush(self._deadlines, (at_s, device_id))
            v.due_s = at_s
