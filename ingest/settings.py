"""Ingest settings (OUTPOST_* variables; see outpost.settings): default, unit, what raising it trades."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from msgspec import Meta

from ingest.safeguards import UNSAFE_MODES
from schemas.config import matching, one_of, pem_file

# A TCP port as text: 0 to 65535.
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"


@dataclass(frozen=True)
class IngestSettings:
    """How fixes come in, what is accepted, and how they are made durable."""

    # The broker ingest subscribes to: mqtt://user:password@host:port or mqtts://… . Empty: the embedded
    # in-process broker (see mqtt_listen).
    mqtt_url: Annotated[
        str,
        matching(
            r"^(?:mqtts?://\S+)?$",
            "empty, or `mqtt://…` or `mqtts://…`",
            "",
            "mqtt://outpost:secret@broker:1883",
            "mqtts://broker.example.org:8883",
        ),
    ] = ""
    # The external broker's dynamic-security admin (Mosquitto's plugin, on the device listener):
    # mqtt://outpost-broker:password@broker:1883. Set, the API keeps the broker's device logins and ACLs
    # equal to the registry: an issued secret is pushed at once, a disabled device or a rotated secret is
    # switched off there and its live session dropped (ingest.broker_registry). Empty: device passwords at
    # the broker are managed by hand. Needs mqtt_url (the embedded broker reads the registry itself).
    mqtt_admin_url: Annotated[
        str,
        matching(
            r"^(?:mqtts?://\S+)?$",
            "empty, or `mqtt://…` or `mqtts://…`",
            "",
            "mqtt://outpost-broker:secret@broker:1883",
        ),
    ] = ""
    # The bearer token EMQX's HTTP authenticator presents to POST /ingest/v1/broker/login (at least 16
    # characters, no spaces; the scale-out profile's BROKER_LOGIN_TOKEN). Set, that route answers device
    # logins from the registry (ingest.http.broker_login): an external EMQX then needs no device users,
    # and each device gets its own exact ACL. Empty (the default): the route is off (404).
    broker_login_token: Annotated[
        str,
        matching(
            r"^(?:[!-~]{16,256})?$",
            "empty, or 16 to 256 printable characters without spaces",
            "",
            "3f9c2a7e51d84b06a1e2c7d9",
        ),
    ] = ""
    # How long a login answered through broker_login_token lasts, s: EMQX then closes the connection and the
    # device logs in again, so a session opened with a secret since rotated, or by a device since disabled,
    # ends within this time (a disabled device's fixes are refused as soon as ingest hears of it). Shorter:
    # quicker cut-off, more logins (each one scrypt check, unless cached: http_auth_cache_s).
    broker_login_expiry_s: Annotated[int, Meta(ge=60, le=30 * 86400)] = 3600
    # Where the embedded broker listens when mqtt_url is empty (host:port; no host: every interface).
    # Devices connect here.
    mqtt_listen: Annotated[
        str,
        matching(
            rf"^(?:\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]*):{_PORT}$",
            "`host:port` or `[v6]:port`, port 0 to 65535",
            "127.0.0.1:1883",
            ":1883",
            "[::1]:1883",
        ),
    ] = "127.0.0.1:1883"
    # The embedded broker's TLS certificate: a PEM file (the server certificate first, then any
    # intermediates), read at start. Set with mqtt_tls_key, the embedded broker speaks MQTT over TLS only
    # (TLS 1.2 or newer) on mqtt_listen (devices connect with mqtts://, conventionally port 8883), and
    # Outpost's own clients of it trust this certificate. Empty (the default): plain MQTT. Only for the
    # embedded broker: an external broker's TLS is its own configuration (mqtts:// and mqtt_tls_ca).
    mqtt_tls_cert: Annotated[str, pem_file("/etc/outpost/tls/mqtt.crt")] = ""
    # The private key of mqtt_tls_cert: a PEM file, not encrypted; readable by Outpost only. Both or neither.
    mqtt_tls_key: Annotated[str, pem_file("/etc/outpost/tls/mqtt.key")] = ""
    # The certificates (PEM) trusted for an mqtts:// mqtt_url or mqtt_admin_url: the external broker's CA,
    # or its self-signed certificate itself. Empty (the default): the system's trust store. The broker's
    # host name is checked against its certificate, except on a loopback address (a broker on this machine,
    # reached as 127.0.0.1 although its certificate names the station).
    mqtt_tls_ca: Annotated[str, pem_file("/etc/outpost/tls/broker-ca.crt")] = ""
    # Fixed MQTT client id of this ingest worker: with a persistent session the broker keeps its backlog.
    mqtt_client_id: Annotated[str, Meta(min_length=1, max_length=256)] = "outpost-ingest"
    # MQTT 5 shared subscription group; several ingest workers with the same group split the stream.
    # Empty: a plain subscription.
    mqtt_shared_group: Annotated[
        str,
        matching(
            r"^[^/+#\s]{0,256}$",
            "empty, or up to 256 characters without `/`, `+`, `#` or spaces",
            "",
            "ingest",
        ),
    ] = ""
    # Unacknowledged QoS 1 messages the broker may have in flight to us (MQTT 5 Receive Maximum); ingest also
    # stops reading once this many wait, which bounds its memory. Raising it lets batches grow larger (more
    # throughput) at the cost of memory and of more redelivery after a crash.
    mqtt_receive_maximum: Annotated[int, Meta(ge=1, le=65535)] = 20000
    # Open mode (demos, load tests): register unknown devices on first contact, with a unit of the same id,
    # and accept devices without credentials; an id alone then identifies a device. Said with a WARNING at
    # start, and refused on a listener that is not loopback unless open_mode_on_network. Production: off
    # (a device is refused, `no_credentials`, until its credentials are issued).
    register_unknown_devices: bool = False
    # Let open mode run although the HTTP host or the embedded broker's mqtt_listen is not loopback:
    # anyone who reaches the station can then report positions and raise SOS alarms as any device id.
    # Only for a load test on a closed network. Production: off.
    open_mode_on_network: bool = False
    # Publish every batch this worker committed on the broker's internal feed topic
    # (outpost/internal/v1/fixes/{worker}, QoS 1), from which `outpost api` replicas keep their live picture
    # (OUTPOST_API_FOLLOW=feed). Only with an external broker (OUTPOST_MQTT_URL). Off: replicas must poll
    # (OUTPOST_API_FOLLOW=poll); saves one MQTT publish, ~51 bytes a fix, per committed batch.
    live_feed: bool = True
    # Flush a batch at this many fixes (bigger: fewer transactions, more memory and latency).
    batch_max_fixes: Annotated[int, Meta(ge=1, le=1_000_000)] = 2000
    # ... or when its oldest fix has waited this long (ms). Lower: fresher storage, smaller batches.
    batch_max_age_ms: Annotated[int, Meta(ge=1, le=3_600_000)] = 200
    # Largest accepted message, bytes (MQTT allows 256 MiB). Bigger messages are dead-lettered as `too_large`.
    max_payload_bytes: Annotated[int, Meta(ge=1, le=268_435_455)] = 262144
    # A fix more than this far in the future (device clock skew), s, is rejected as `future`.
    max_future_s: Annotated[float, Meta(ge=0, le=7 * 86400)] = 300.0
    # A fix older than this, s, is rejected as `too_old` (offline buffers older than this are not accepted).
    max_past_s: Annotated[float, Meta(gt=0, le=3650 * 86400)] = 7 * 86400.0
    # Fixes with a reported accuracy worse than this (m) are stored, flagged low_accuracy, and not used for
    # dispatch.
    max_accuracy_m: Annotated[float, Meta(ge=0, le=100_000)] = 200.0
    # Implied speed from the previous fix above this is impossible (m/s; 83 m/s = 300 km/h): stored, flagged,
    # does not move the unit.
    max_speed_mps: Annotated[float, Meta(gt=0, le=1000)] = 83.0
    # The local durable spool used while the database is unavailable (a directory).
    spool_dir: Annotated[str, Meta(min_length=1, max_length=4096)] = "./outpost-data/spool"
    # Spool size limit (bytes, about 155 bytes per fix: 1 GiB holds ~7 million). When full, ingest stops
    # acknowledging: the backlog stays with the broker (up to its max_queued_bytes; beyond that Mosquitto
    # refuses new messages for our session) and with the devices (their offline buffers). Size the spool
    # and the broker's queue together for the longest database outage to ride out.
    spool_max_bytes: Annotated[int, Meta(ge=1, le=1 << 40)] = 1 << 30
    # At most this many dead letters per second are logged (all are stored and counted); 0: none logged.
    rejected_log_per_s: Annotated[float, Meta(ge=0, le=100_000)] = 5.0
    # MQTT protocol of the ingest subscriber: "5" (the Receive Maximum bounds what the broker sends us;
    # session expiry; shared subscriptions), "3.1.1" (brokers without MQTT 5, e.g. the embedded amqtt;
    # memory is then bounded by pausing reads), or "auto": 5 with mqtt_url, 3.1.1 with the embedded broker.
    mqtt_protocol: Annotated[str, one_of("auto", "5", "3.1.1")] = "auto"
    # How long the broker keeps our session (subscriptions and unacknowledged backlog) while ingest is
    # away, s (MQTT 5; for 3.1.1 the broker's persistent_client_expiration decides). Longer: survives
    # longer outages of ingest, at the cost of broker memory for a worker that never comes back.
    mqtt_session_expiry_s: Annotated[int, Meta(ge=1, le=4_294_967_295)] = 7 * 86400
    # MQTT keepalive, s. Lower: a dead connection is noticed sooner, at the cost of more pings.
    mqtt_keepalive_s: Annotated[int, Meta(ge=1, le=65535)] = 30
    # Reconnect backoff, s: the first retry waits this long, each next one twice as long as the last...
    mqtt_reconnect_min_s: Annotated[float, Meta(gt=0, le=3600)] = 0.5
    # ... up to this long, s.
    mqtt_reconnect_max_s: Annotated[float, Meta(gt=0, le=3600)] = 30.0
    # The device directory is reloaded from the database this often, s (changes made through the API
    # reach ingest within this time; a message from an unknown device triggers a reload sooner).
    device_refresh_s: Annotated[float, Meta(gt=0, le=86400)] = 60.0
    # ... but a message naming an unknown device reloads it at most this often, s (a flood of unknown ids
    # costs one query per interval; 0: on every such message).
    device_miss_refresh_s: Annotated[float, Meta(ge=0, le=86400)] = 2.0
    # A device secret verified over HTTP is trusted this long, s (scrypt costs ~50 ms per check). Longer:
    # less CPU; a revoked secret keeps working up to this long. 0: checked on every request.
    http_auth_cache_s: Annotated[float, Meta(ge=0, le=86400)] = 300.0
    # What becomes of a fix taken while its unit is off duty (status off_duty): "restricted" stores it
    # marked, out of the live picture and of every read but an admin's, who must state a reason (audited);
    # "drop" does not store it (counted as ignored `off_duty_dropped`, acknowledged so it is not resent).
    # "restricted" keeps a record for an inquiry; "drop" keeps nothing of an officer's private time.
    off_duty_fixes: Annotated[str, one_of("restricted", "drop")] = "restricted"
    # How long an HTTP request waits for its fix to become durable before answering 503, s.
    http_durable_timeout_s: Annotated[float, Meta(gt=0, le=3600)] = 10.0
    # TEST ONLY, never in production: switch one safeguard off so a chaos test's negative control can show
    # the loss it prevents: "ack_on_receipt", "drop_on_store_failure", "clean_session",
    # "ack_on_spool_failure" or (embedded broker only) "broker_ack_on_receipt". Empty: all on.
    unsafe_disable_safeguard: Annotated[str, one_of(*UNSAFE_MODES)] = ""
