"""Ingest settings (OUTPOST_* variables; see schemas.config). Every field: default, unit, what raising it trades."""

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
    # Unacknowledged QoS 1 messages the broker may have in flight to us. Raising it lets batches grow
    # larger (more throughput) at the cost of more redelivery after a crash (never loss).
    mqtt_receive_maximum: int = 20000
    # Register unknown devices on first contact, with a unit of the same id (demos, load tests). Production: off.
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
    # Fixes with a reported accuracy worse than this are stored, flagged low_accuracy, and not used for dispatch.
    max_accuracy_m: float = 200.0
    # Implied speed from the previous fix above this is impossible (m/s; 83 m/s = 300 km/h): stored, flagged,
    # does not move the unit.
    max_speed_mps: float = 83.0
    # The local durable spool used while the database is unavailable.
    spool_dir: str = "./outpost-data/spool"
    # Spool size limit (bytes, about 150 bytes per fix). When full, ingest stops acknowledging: the broker
    # keeps the backlog (it holds up to its max_queued_bytes), devices keep theirs. Nothing is dropped.
    spool_max_bytes: int = 1 << 30
    # At most this many dead letters per second are logged (all are stored and counted).
    rejected_log_per_s: float = 5.0
