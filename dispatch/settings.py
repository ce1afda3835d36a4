"""Dispatcher-side settings (OUTPOST_* variables; see outpost.settings)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from msgspec import Meta

from schemas.config import listing, matching, one_of, pem_file


@dataclass(frozen=True)
class ApiSettings:
    """The HTTP API."""

    # The address the HTTP API listens on: a host name or address (0.0.0.0: every interface).
    http_host: Annotated[
        str, matching(r"^\S+$", "a host name or address, no spaces", "127.0.0.1", "0.0.0.0", "::")
    ] = "127.0.0.1"
    # The TCP port the HTTP API listens on; 0: any free port (the tests' choice).
    http_port: Annotated[int, Meta(ge=0, le=65535)] = 8080
    # A connection gets this long to send a whole request line and its headers, and an idle keep-alive
    # connection is closed after it (s). It is aiohttp's keep-alive timer, which runs from the moment a
    # connection opens until a request is complete, so a client dribbling its headers (slowloris) holds a
    # socket no longer; a request being answered (an event stream too) is not cut. Higher: slower links
    # and longer keep-alive reuse, and each held socket costs a file descriptor.
    http_header_timeout_s: Annotated[float, Meta(gt=0, le=3600)] = 15.0
    # The HTTP API's TLS certificate: a PEM file (the server certificate first, then any intermediates),
    # read at start. Set with http_tls_key, the API (and the `ingest` role's HTTP side) serves HTTPS only,
    # TLS 1.2 or newer; empty (the default): plain HTTP, for a station behind a TLS-terminating proxy or on
    # loopback. A certificate renewed on disk is picked up at the next start.
    http_tls_cert: Annotated[str, pem_file("/etc/outpost/tls/api.crt")] = ""
    # The private key of http_tls_cert: a PEM file, not encrypted (nobody is there to type a passphrase at
    # start); readable by Outpost only. Both or neither.
    http_tls_key: Annotated[str, pem_file("/etc/outpost/tls/api.key")] = ""
    # On start, the live index is rebuilt from fixes newer than this (s). Longer: slower start, staler units.
    index_lookback_s: Annotated[float, Meta(gt=0, le=366 * 86400)] = 86400.0
    # Units whose fused fix is older than this are excluded from nearest as stale (s).
    max_fix_age_s: Annotated[float, Meta(gt=0, le=366 * 86400)] = 300.0
    # How an `outpost api` replica keeps its live picture: "feed" (the batches ingest workers committed,
    # published on the broker's internal feed topic, outpost/internal/v1/fixes/…; a new fix shows within
    # milliseconds) or "poll" (read the database every second: ~0.6 s behind, one query a second per
    # replica, for a broker the workers cannot publish to). Other roles ignore it.
    api_follow: Annotated[str, one_of("feed", "poll")] = "feed"
    # With api_follow=feed: how often a replica also sweeps the database for fixes whose feed message it
    # missed (its broker connection down, a worker killed between commit and publish), s. A gap it can
    # see (a worker's batch numbers jump) is swept at once. Shorter: such a fix waits less, for one
    # dispatch-window query per replica per sweep.
    api_follow_sweep_s: Annotated[float, Meta(ge=1, le=3600)] = 30.0
    # Most units one nearest query may ask for (k). Higher: bigger answers, slower worst case.
    nearest_max_k: Annotated[int, Meta(ge=1, le=100_000)] = 100
    # Typical straight-line speed of an officer on foot hurrying, for the ETA estimate (m/s). Only an
    # estimate; raising it makes every such ETA shorter.
    eta_police_mps: Annotated[float, Meta(gt=0, le=100)] = 2.0
    # ... of an auxiliary walking (m/s).
    eta_auxiliary_mps: Annotated[float, Meta(gt=0, le=100)] = 1.4
    # ... of a car in town (m/s).
    eta_vehicle_mps: Annotated[float, Meta(gt=0, le=100)] = 8.0
    # Fusion of one unit's devices (geo.fusion.fuse): device fixes older than this next to the unit's newest
    # fix do not compete (s).
    fusion_max_age_s: Annotated[float, Meta(gt=0, le=86400)] = 60.0
    # ... within this window of the newest, priority beats freshness (s).
    fusion_recency_window_s: Annotated[float, Meta(ge=0, le=86400)] = 15.0
    # ... fixes coarser than this compete only when nothing finer is fresh (m).
    fusion_max_accuracy_m: Annotated[float, Meta(gt=0, le=100_000)] = 100.0
    # Two devices of one unit farther apart than this (plus both accuracies), for at least
    # separation_hold_s, raise a device-separation event (m). Lower: earlier warnings, more false alarms.
    separation_threshold_m: Annotated[float, Meta(gt=0, le=100_000)] = 150.0
    # ... and for at least this long (s).
    separation_hold_s: Annotated[float, Meta(ge=0, le=86400)] = 60.0
    # Live stream: moves of one unit are coalesced to at most one per this interval (s; 0: every move).
    # Lower: smoother maps, more traffic per console.
    stream_coalesce_s: Annotated[float, Meta(ge=0, le=3600)] = 0.25
    # Events a console may fall behind before it is dropped (it reconnects). Higher: more memory per console.
    stream_max_queued: Annotated[int, Meta(ge=1, le=10_000_000)] = 10000
    # Events kept for consoles that reconnect with Last-Event-ID (every console shares them); one whose gap
    # is older gets a `resync` event and reloads its snapshot. Higher: longer cuts bridged, about 0.5 kB more
    # memory an event.
    stream_replay_events: Annotated[int, Meta(ge=1, le=10_000_000)] = 20000
    # Event streams one API token may hold open at once; one more gets 429 with Retry-After. A wall screen
    # and a few consoles share a token at most stations.
    stream_max_per_token: Annotated[int, Meta(ge=1, le=100_000)] = 16
    # Event streams open in all; one more gets 503 with Retry-After. Each holds a socket and a queue of up to
    # stream_max_queued events.
    stream_max_total: Annotated[int, Meta(ge=1, le=1_000_000)] = 1000
    # Seconds between keep-alive comments on an idle stream (proxies close silent connections).
    stream_keepalive_s: Annotated[float, Meta(gt=0, le=3600)] = 15.0
    # The live map's base layer: a tile URL template with {z}, {x} and {y}, then "|" and its attribution
    # (shown on the map, as tile licences require). Empty: no tiles; the map draws the shipped districts and
    # roads and needs no network. Set it only to a tile server the station can reach.
    map_tiles: Annotated[
        str,
        matching(
            r"^$|^(?=[^|]*\{z\})(?=[^|]*\{x\})(?=[^|]*\{y\})(?:https?://|/)[^\s|]+\|\S.*$",
            "empty, or `URL-template|attribution`: an http(s) or /path template with {z}, {x}, {y}",
            "",
            "http://tiles.station.local/{z}/{x}/{y}.png|© OpenStreetMap contributors",
            "/tiles/{z}/{x}/{y}.png|© OpenStreetMap contributors",
        ),
    ] = ""
    # A verified API token is trusted from memory this long (s; 0: looked up on every request); revocation
    # outside the API takes this long to bite. Lower: more database lookups.
    token_cache_s: Annotated[float, Meta(ge=0, le=86400)] = 30.0
    # How long the event loop's thread may keep Python's interpreter lock while a worker thread (the audit's
    # and the store's database calls) waits for it (ms; Python's own default is 5). Every answer waits for
    # its audit commit, made in a worker thread, so under load each of its round trips waited up to this
    # long. Lower: quicker answers, more thread switches. Measured: benchmarks/bench_http_designs.py.
    thread_switch_ms: Annotated[float, Meta(ge=0.05, le=100)] = 0.5
    # Every read of a position is audited before its answer leaves, and every change before it is made:
    # true refuses the request (503) when its record cannot be committed to the database; false (the
    # default) goes on once the record is fsynced to the local journal (audit_journal_path) instead,
    # shipped to the database when it is back. True: no answer without its record in the database, and no
    # reads or changes during an outage.
    audit_required: bool = False
    # Records arriving while one audit commit runs go into the next; this adds a wait before each commit to
    # gather more (s; 0: commit at once). Raising it means fewer transactions and slower answers.
    audit_commit_window_s: Annotated[float, Meta(ge=0, le=1)] = 0.0
    # Before each audit commit, yield the event loop to the requests already received, while they keep
    # recording, for this long at most (s; 0: commit at once): they join this commit instead of the next.
    # A lone request waits a few loop turns; higher: fewer commits under load, later answers at most so much.
    audit_commit_gather_s: Annotated[float, Meta(ge=0, le=1)] = 0.002
    # While the database refuses the audit, it is tried again this often (s; 0: at every batch); the
    # batches meanwhile go straight to the journal. Lower: sooner back in the database (and, with
    # audit_required, sooner answering), a connection attempt more often during an outage.
    audit_retry_s: Annotated[float, Meta(ge=0, le=60)] = 1.0
    # Audit records not yet durable (the database and the journal both failing) beyond which requests are
    # refused with 503 before they run; none is dropped. Higher: more memory held during such a failure.
    audit_max_pending: Annotated[int, Meta(ge=1, le=100_000_000)] = 100000
    # The local journal of audit records the database could not take (a file, created when first needed,
    # fsynced per batch, removed once shipped). Put it on a disk that survives the process: a station that
    # loses it loses those records.
    audit_journal_path: Annotated[str, Meta(min_length=1, max_length=4096)] = (
        "./outpost-data/audit-journal.jsonl"
    )
    # The longest time range one track or unit summary may ask for (s); a longer one gets 422. Raising it
    # lets one request read more rows.
    track_max_range_s: Annotated[float, Meta(gt=0, le=366 * 86400)] = 31 * 86400.0
    # The most fixes a simplified track or a summary holds in memory; beyond, 422 (ask a shorter range).
    # An unsimplified track streams and has no such limit.
    track_max_points: Annotated[int, Meta(ge=1, le=100_000_000)] = 1_000_000
    # A stop is a stay within this distance of where it began (m) ...
    stop_radius_m: Annotated[float, Meta(gt=0, le=100_000)] = 50.0
    # ... for at least this long (s). Shorter: red lights become stops.
    stop_min_s: Annotated[float, Meta(gt=0, le=86400)] = 300.0
    # The station's time zone (an IANA name, checked against zoneinfo at start): heat maps' `hour` and
    # `weekday` filters are in this local time (UTC: filters in UTC).
    station_timezone: Annotated[
        str,
        matching(
            r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$", "an IANA time zone name", "UTC", "America/Los_Angeles"
        ),
    ] = "UTC"
    # The longest time range one heat map may count (s); a longer one gets 422. The count runs in the
    # database, so raising it costs time per request, not memory.
    heatmap_max_range_s: Annotated[float, Meta(gt=0, le=10 * 366 * 86400)] = 366 * 86400.0
    # Patrol presence is counted per H3 cell at this resolution (9: ~0.1 km², a few blocks); a patrol heat
    # map may ask for it or any coarser one. Finer: more rows in the rollup, sharper maps.
    patrol_res: Annotated[int, Meta(ge=0, le=15)] = 9
    # A fix stands for where its unit was until the unit's next fix, but at most this long (s): a unit silent
    # longer counts nowhere meanwhile. Longer: gaps in reporting are filled in, rightly or not.
    presence_max_gap_s: Annotated[float, Meta(gt=0, le=3600)] = 120.0
    # An hour of presence is stored (materialized) once it ended this long ago (s); newer hours are computed
    # from the fixes at each request. Longer: later fixes from offline buffers are counted, more raw work.
    presence_settle_s: Annotated[float, Meta(ge=0, le=7 * 86400)] = 3600.0
    # A fleet snapshot at T shows each unit's last fix at or before T only if it is at most this old (s);
    # older: the unit is listed without a position. Longer: fewer blanks, staler dots on a playback.
    snapshot_lookback_s: Annotated[float, Meta(gt=0, le=86400)] = 900.0
    # The most frames one playback (`/v1/units/snapshot?from=&to=&step_s=`) may ask for; more: 422 naming
    # step_s. Raising it lets one request read the database that many times.
    playback_max_frames: Annotated[int, Meta(ge=1, le=1_000_000)] = 2000
    # ... and the most unit positions (units × frames) it may answer; more: 422 naming step_s.
    playback_max_positions: Annotated[int, Meta(ge=1, le=100_000_000)] = 2_000_000
    # A unit is out of its assigned grid only beyond this distance from it (m); it counts as back once
    # inside (the band between is hysteresis). Also what "inside" allows for coverage. Larger: fewer alerts
    # for GPS error along borders, later alerts for real departures.
    grid_tolerance_m: Annotated[float, Meta(ge=0, le=10_000)] = 50.0
    # ... and only after staying out this long (s) is an out_of_grid alert raised. Shorter: earlier alerts,
    # more of them for a quick errand across the border.
    out_of_grid_dwell_s: Annotated[float, Meta(ge=0, le=86400)] = 300.0
    # A grid whose holder is absent, off duty or busy elsewhere this long (s) raises a coverage gap.
    # Shorter: earlier warnings, more noise from short absences.
    coverage_gap_s: Annotated[float, Meta(ge=0, le=86400)] = 600.0
    # A unit inside a geofence this long (s) raises a dwell event, unless the fence sets its own.
    fence_dwell_s: Annotated[float, Meta(gt=0, le=86400)] = 300.0
    # How often out-of-grid dwells, coverage gaps and fence dwells are judged and the assignments re-read
    # (s). Lower: alerts closer to their deadline, one small query more each time.
    patrol_check_s: Annotated[float, Meta(gt=0, le=3600)] = 5.0
    # Grids and geofences are re-read from the database this often (s) to pick up `outpost grids import`
    # run by another process (changes through this API apply at once). Lower: sooner, one query more.
    zones_refresh_s: Annotated[float, Meta(gt=0, le=86400)] = 30.0
    # An on-duty unit's device is offline after no fix for this many times its usual interval (the
    # median gap of its recent fixes). Lower: earlier alerts, more of them for a device briefly in a tunnel.
    device_offline_factor: Annotated[float, Meta(ge=1, le=100)] = 3.0
    # ... but never sooner than this (s): a device reporting every second is not offline after 3 s.
    device_offline_min_s: Annotated[float, Meta(gt=0, le=86400)] = 60.0
    # ... and never later than this (s), also the limit while its interval is not learned yet (the
    # ceiling wins over the floor). Higher: a slow device's silence is noticed later.
    device_offline_max_s: Annotated[float, Meta(gt=0, le=86400)] = 900.0
    # A device reporting this battery level or lower (%) raises battery_low.
    battery_low_pct: Annotated[float, Meta(ge=0, le=100)] = 15.0
    # ... cleared only once back at battery_low_pct plus this (%): no flapping around the threshold.
    battery_hysteresis_pct: Annotated[float, Meta(ge=0, le=100)] = 5.0


@dataclass(frozen=True)
class DispatchSettings:
    """The incident loop."""

    # Seconds a unit has to accept an offer before it goes to the next nearest available unit.
    offer_timeout_s: Annotated[float, Meta(gt=0, le=86400)] = 60.0
    # With several `outpost api` replicas on PostgreSQL, one leads the incident loop and the field desk (its
    # timers, offers, re-dispatch, roll calls, device messages; the others refuse incident and roll-call
    # writes with 503). How often a follower tries to take the lead
    # and the leader checks it still holds it, s. Lower: a dead leader is replaced sooner, for one tiny
    # query per replica per period.
    incident_lead_retry_s: Annotated[float, Meta(ge=0.1, le=60)] = 1.0
    # A unit within this distance of its incident is detected on scene (m).
    arrival_radius_m: Annotated[float, Meta(gt=0, le=100_000)] = 75.0
    # Offer P1/P2 incidents automatically to the recommended unit (policy); P3/P4 wait for a dispatcher.
    auto_dispatch_priorities: Annotated[
        tuple[str, ...], listing("priorities P1 to P4, comma-separated (none: all wait)", "P1,P2", "P1", "")
    ] = ("P1", "P2")
    # Units each priority needs, by kind ("any": any kind), "+"-separated. P1 sends a police officer and an
    # auxiliary together; a priority not listed needs one unit of any kind. More units: more coverage, fewer
    # units left free for the next incident.
    units_needed: Annotated[
        tuple[str, ...],
        listing(
            "`P<n>=kind+kind` entries, comma-separated; kinds police, auxiliary, vehicle, any",
            "P1=police+auxiliary",
            "P1=police+auxiliary,P2=vehicle",
            "",
        ),
    ] = ("P1=police+auxiliary",)
    # Service-level targets per priority and tier (s), "/"-separated for the tiers community_grid /
    # police_grid / station / command_centre: the incident must have a unit on scene within this long of
    # entering a tier, else it escalates to the next tier (recorded and notified). Lower: escalates sooner
    # (more supervisors' attention, more noise).
    sla_s: Annotated[
        tuple[str, ...],
        listing(
            "`P<n>=s/s/s/s` for each of P1 to P4 (1 to 4 targets > 0), comma-separated",
            "P1=240/300/600/900,P2=600/900/1800/3600,P3=1800/3600/7200/14400,P4=3600/7200/14400/28800",
            "P1=60,P2=120,P3=600,P4=3600",
        ),
    ] = (
        "P1=240/300/600/900",
        "P2=600/900/1800/3600",
        "P3=1800/3600/7200/14400",
        "P4=3600/7200/14400/28800",
    )
    # Candidate units kept in recommendations and in each decision snapshot. More: bigger snapshots.
    recommend_k: Annotated[int, Meta(ge=1, le=1000)] = 5
    # A dispatched unit seen this far from where it accepted is detected en route (m); 0 turns it off.
    # Lower: earlier detection, more false departures from GPS jitter.
    departure_distance_m: Annotated[float, Meta(ge=0, le=100_000)] = 100.0
    # Idempotency-Key records are kept this long (s); a retry after that runs again. Longer: more rows.
    idempotency_ttl_s: Annotated[float, Meta(gt=0, le=366 * 86400)] = 86400.0
    # TEST ONLY, never in production: the chaos test's negative control. On start, pending offers' timeouts
    # and SLA deadlines are not re-armed from the database, as if timers lived in memory only.
    unsafe_forget_timers: bool = False


@dataclass(frozen=True)
class FieldSettings:
    """Officers in the field: check-ins and roll calls."""

    # A check-in counts inside its grid when the fix is at most this far outside it (m). Higher: fewer
    # refusals at the border, and officers checked in from the next street.
    checkin_tolerance_m: Annotated[float, Meta(ge=0, le=10_000)] = 50.0
    # A check-in's fix must be at most this old when the check-in arrives (s). Higher: a device that lost
    # its fix a while ago still checks in.
    checkin_max_fix_age_s: Annotated[float, Meta(gt=0, le=86400)] = 120.0
    # A check-in's fix must be at least this accurate (m). Higher: coarse network fixes count.
    checkin_max_accuracy_m: Annotated[float, Meta(gt=0, le=100_000)] = 100.0
    # A check-in counts from this long before the assignment starts (s) until it ends. Higher: officers
    # may check in earlier for their shift.
    checkin_early_s: Annotated[float, Meta(ge=0, le=86400)] = 900.0
    # The attendance view calls a first check-in this long after the assignment's start late (s).
    checkin_late_after_s: Annotated[float, Meta(ge=0, le=86400)] = 300.0
    # Check a unit in automatically when one of its devices' fixes first lies inside its assigned grid
    # during the assignment (source `auto`). Off: officers check in themselves.
    auto_checkin: bool = False
    # A roll call's answers are due within this long of its start when the request names no deadline (s).
    rollcall_deadline_s: Annotated[float, Meta(gt=0, le=86400)] = 120.0
    # After the deadline, silent units are pinged once more and answers still count, as `late`, this long
    # (s); then the roll call closes and the silent are reported. Longer: more late answers, later result.
    rollcall_late_s: Annotated[float, Meta(gt=0, le=86400)] = 60.0
