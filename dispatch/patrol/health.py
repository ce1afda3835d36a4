"""The device health watch's adapter: the fleet's fixes in, alerts on the event bus.

What it decides lives in `dispatch.live.health` (`DeviceHealth`); this module feeds it every batch the
fleet applies (`follow`), says which devices are watched (bound to an enabled unit on duty, the device
enabled), and judges on the app clock when the patrol watch checks (`Patrol.check`, every
`patrol_check_s`); what a fix raises or clears (a low battery, a device heard again) is published at
once. On `follow` the fixes the fleet was loaded with are taken first, heard when they were
received, so a device already silent at a restart is noticed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dispatch.clock import Clock
from dispatch.fleet import Fleet
from dispatch.live.health import DeviceHealth, HealthAlert, HealthRules
from dispatch.live.out_of_grid import OFF_DUTY_STATUSES
from dispatch.settings import ApiSettings
from schemas.fix import Fix

Publish = Callable[[list[HealthAlert]], None]


def rules_of(settings: ApiSettings) -> HealthRules:
    """The health thresholds of the API's settings."""
    return HealthRules(**{name: getattr(settings, name) for name in HealthRules._fields})


class HealthWatch:
    """Device offline and low battery for the fleet's devices; see the module docstring."""

    def __init__(self, fleet: Fleet, clock: Clock, settings: ApiSettings, publish: Publish) -> None:
        self.fleet, self._clock, self._publish = fleet, clock, publish
        self.health = DeviceHealth(rules_of(settings))
        self._unsubscribe: Callable[[], None] | None = None

    def follow(self) -> None:
        """Take the fixes the fleet holds, then every batch it applies (idempotent)."""
        if self._unsubscribe is not None:
            return
        held = [d.last_fix for d in self.fleet.picture.devices() if d.last_fix is not None]
        self._publish([a for f in held for a in self._observe(f, f.received_at.timestamp())])
        self._unsubscribe = self.fleet.subscribe_fixes(self._on_fixes)

    def stop(self) -> None:
        """Stop following the fleet."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def watched_unit(self, device_id: str) -> str | None:
        """The unit the device is watched for now (bound, enabled, on duty), or None."""
        device = self.fleet.device(device_id)
        if device is None or not device.enabled or device.unit_id is None:
            return None
        unit = self.fleet.unit(device.unit_id)
        if unit is None or not unit.enabled or unit.status in OFF_DUTY_STATUSES:
            return None
        return unit.id

    def check(self) -> None:
        """Raise every watched device silent past its limit, clear what is up for those no longer watched."""
        self._publish(self.health.judge(self._clock.now(), self.watched_unit))

    def _on_fixes(self, fixes: Sequence[Fix]) -> None:
        now_s = self._clock.now()
        alerts = [a for fix in fixes for a in self._observe(fix, now_s)]
        if alerts:
            self._publish(alerts)

    def _observe(self, fix: Fix, heard_s: float) -> list[HealthAlert]:
        return self.health.observe(
            fix.device_id, fix.ts.timestamp(), fix.battery_pct, heard_s, self.watched_unit
        )
