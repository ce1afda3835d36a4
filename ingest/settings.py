"""Ingest settings (OUTPOST_* variables; see outpost.settings): default, unit, what raising it trades."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IngestSettings:
    """How fixes come in, what is accepted, and how they are made durable."""

    # The broker ingest subscribes to: mqtt://user:password@host:port or mqtts://… . Empty: the embedded
    # in-process broker (see mqtt_listen).
    mqtt_url: str = ""
    # Where the embedded broker listens when mqtt_url is empty (host:port). Devices connect here.
    mqtt_listen: str = "127.0.0.1:1883"
    # Fixed MQTT client id of this ingest worker: with a persistent session the broker keeps its backlog.
    mqtt_client_id: str = "outpost-ingest"
    # MQTT 5 shared subscription group; several ingest workers with the same group split the stream.
    # Empty: a plain subscription.
    mqtt_shared_group: str = ""
    # Unacknowledged QoS 1 messages the broker may have in flight to us (MQTT 5 Receive Maximum, at most
    # 65535); ingest also stops reading once this many wait, which bounds its memory. Raising it lets
    # batches grow larger (more throughput) at the cost of memory and of more redelivery after a crash.
    mqtt_receive_maximum: int = 20000
    # Register unknown devices on first contact, with a unit of the same id (demos, load tests).
    # Production: off.
    register_unknown_devices: bool = False
    # Flush a batch at this many fixes (bigger: fewer transactions, more memory and latency).
    batch_max_fixes: int = 2000
    # ... or when its oldest fix has waited this long (ms). Lower: fresher storage, smaller batches.
    batch_max_age_ms: int = 200
    # Largest accepted message, bytes. Bigger messages are dead-lettered as `too_large`.
    max_payload_bytes: int = 262144
    # A fix more than this far in the future (device clock skew) is rejected as `future`.
    max_future_s: float = 300.0
    # A fix older than this is rejected as `too_old` (offline buffers older than this are not accepted).
    max_past_s: float = 7 * 86400.0
    # Fixes with a reported accuracy worse than this are stored, flagged low_accuracy, and not used for
    # dispatch.
    max_accuracy_m: float = 200.0
    # Implied speed from the previous fix above this is impossible (m/s; 83 m/s = 300 km/h): stored, flagged,
    # does not move the unit.
    max_speed_mps: float = 83.0
    # The local durable spool used while the database is unavailable.
    spool_dir: str = "./outpost-data/spool"
    # Spool size limit (bytes, about 155 bytes per fix: 1 GiB holds ~7 million). When full, ingest stops
    # acknowledging: the backlog stays with the broker (up to its max_queued_bytes; beyond that Mosquitto
    # refuses new messages for our session) and with the devices (their offline buffers). Size the spool
    # and the broker's queue together for the longest database outage to ride out.
    spool_max_bytes: int = 1 << 30
    # At most this many dead letters per second are logged (all are stored and counted).
    rejected_log_per_s: float = 5.0
    # MQTT protocol of the ingest subscriber: "5" (the Receive Maximum bounds what the broker sends us;
    # session expiry; shared subscriptions), "3.1.1" (brokers without MQTT 5, e.g. the embedded amqtt;
    # memory is then bounded by pausing reads), or "auto": 5 with mqtt_url, 3.1.1 with the embedded broker.
    mqtt_protocol: str = "auto"
    # How long the broker keeps our session (subscriptions and unacknowledged backlog) while ingest is
    # away, s (MQTT 5; for 3.1.1 the broker's persistent_client_expiration decides). Longer: survives
    # longer outages of ingest, at the cost of broker memory for a worker that never comes back.
    mqtt_session_expiry_s: int = 7 * 86400
    # MQTT keepalive, s. Lower: a dead connection is noticed sooner, at the cost of more pings.
    mqtt_keepalive_s: int = 30
    # Reconnect backoff, s: first retry after the minimum, doubling up to the maximum.
    mqtt_reconnect_min_s: float = 0.5
    mqtt_reconnect_max_s: float = 30.0
    # The device directory is reloaded from the database this often, s (changes made through the API
    # reach ingest within this time; a message from an unknown device triggers a reload sooner).
    device_refresh_s: float = 60.0
    # ... but a message naming an unknown device reloads it at most this often, s (a flood of unknown ids
    # costs one query per interval).
    device_miss_refresh_s: float = 2.0
    # A device secret verified over HTTP is trusted this long, s (scrypt costs ~50 ms per check). Longer:
    # less CPU; a revoked secret keeps working up to this long.
    http_auth_cache_s: float = 300.0
    # How long an HTTP request waits for its fix to become durable before answering 503, s.
    http_durable_timeout_s: float = 10.0
    # TEST ONLY, never in production: switch one safeguard off so a chaos test's negative control can show
    # the loss it prevents: "ack_on_receipt", "drop_on_store_failure", "clean_session" or (embedded broker
    # only) "broker_ack_on_receipt". Empty: all on.
    unsafe_disable_safeguard: str = ""
