"""Dispatcher-side settings (OUTPOST_* variables; see outpost.settings)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ApiSettings:
    """The HTTP API."""

    http_host: str = "127.0.0.1"
    http_port: int = 8080
    # On start, the live index is rebuilt from fixes newer than this (s). Longer: slower start, staler units.
    index_lookback_s: float = 86400.0
    # Units whose fused fix is older than this are excluded from nearest as stale (s).
    max_fix_age_s: float = 300.0
    # Most units one nearest query may ask for (k). Higher: bigger answers, slower worst case.
    nearest_max_k: int = 100
    # Typical straight-line speeds for the ETA estimate (m/s), by unit kind: an officer on foot hurrying,
    # an auxiliary walking, a car in town. Only an estimate; raising them makes every ETA shorter.
    eta_police_mps: float = 2.0
    eta_auxiliary_mps: float = 1.4
    eta_vehicle_mps: float = 8.0
    # Fusion of one unit's devices (geo.fusion.fuse): device fixes older than this next to the unit's newest
    # fix do not compete (s); within this window of the newest, priority beats freshness (s); fixes coarser
    # than this compete only when nothing finer is fresh (m).
    fusion_max_age_s: float = 60.0
    fusion_recency_window_s: float = 15.0
    fusion_max_accuracy_m: float = 100.0
    # Two devices of one unit farther apart than this (plus both accuracies), for at least
    # separation_hold_s, raise a device-separation event (m, s). Lower: earlier warnings, more false alarms.
    separation_threshold_m: float = 150.0
    separation_hold_s: float = 60.0
    # Live stream: moves of one unit are coalesced to at most one per this interval (s). Lower: smoother
    # maps, more traffic per console.
    stream_coalesce_s: float = 0.25
    # Events a console may fall behind before it is dropped (it reconnects). Higher: more memory per console.
    stream_max_queued: int = 10000
    # Seconds between keep-alive comments on an idle stream (proxies close silent connections).
    stream_keepalive_s: float = 15.0
    # A verified API token is trusted from memory this long (s); revocation outside the API takes this
    # long to bite. Lower: more database lookups.
    token_cache_s: float = 30.0
    # Audit entries are written in batches every this many seconds; raising it means fewer transactions
    # and more entries lost if the process is killed.
    audit_flush_s: float = 0.5
    # Audit entries held in memory while the database is away; beyond this they are dropped and counted.
    audit_max_pending: int = 100000


@dataclass(frozen=True)
class DispatchSettings:
    """The incident loop."""

    # Seconds a unit has to accept an offer before it goes to the next nearest available unit.
    offer_timeout_s: float = 60.0
    # A unit within this distance of its incident is detected on scene (m).
    arrival_radius_m: float = 75.0
    # Offer P1/P2 incidents automatically to the recommended unit (policy); P3/P4 wait for a dispatcher.
    auto_dispatch_priorities: tuple[str, ...] = ("P1", "P2")
    # Units each priority needs, by kind ("any": any kind), "+"-separated. P1 sends a police officer and an
    # auxiliary together; a priority not listed needs one unit of any kind. More units: more coverage, fewer
    # units left free for the next incident.
    units_needed: tuple[str, ...] = ("P1=police+auxiliary",)
    # Service-level targets per priority and tier (s), "/"-separated for the tiers community_grid /
    # police_grid / station / command_centre: the incident must have a unit on scene within this long of
    # entering a tier, else it escalates to the next tier (recorded and notified). Lower: escalates sooner
    # (more supervisors' attention, more noise).
    sla_s: tuple[str, ...] = (
        "P1=240/300/600/900",
        "P2=600/900/1800/3600",
        "P3=1800/3600/7200/14400",
        "P4=3600/7200/14400/28800",
    )
    # Candidate units kept in recommendations and in each decision snapshot. More: bigger snapshots.
    recommend_k: int = 5
    # A dispatched unit seen this far from where it accepted is detected en route (m); 0 turns it off.
    # Lower: earlier detection, more false departures from GPS jitter.
    departure_distance_m: float = 100.0
    # Idempotency-Key records are kept this long (s); a retry after that runs again. Longer: more rows.
    idempotency_ttl_s: float = 86400.0
