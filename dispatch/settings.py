"""Dispatcher-side settings (OUTPOST_* variables; see schemas.config)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ApiSettings:
    """The HTTP API."""

    http_host: str = "127.0.0.1"
    http_port: int = 8080
    # On start, the live index is rebuilt from fixes newer than this (s). Longer: slower start, older units kept.
    index_lookback_s: float = 86400.0
    # Units whose fused fix is older than this are excluded from nearest as stale (s).
    max_fix_age_s: float = 300.0


@dataclass(frozen=True)
class DispatchSettings:
    """The incident loop."""

    # Seconds a unit has to accept an offer before it goes to the next nearest available unit.
    offer_timeout_s: float = 60.0
    # A unit within this distance of its incident is detected on scene (m).
    arrival_radius_m: float = 75.0
    # Offer P1/P2 incidents automatically to the recommended unit (policy); P3/P4 wait for a dispatcher.
    auto_dispatch_priorities: tuple[str, ...] = ("P1", "P2")
