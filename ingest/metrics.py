"""Prometheus metrics of the ingest path (default registry, served by the API at /metrics).

Counters are updated once per batch, not per message: the hot path counts in plain ints and the flush
adds them here, so observability costs nothing per fix. Lag histograms observe a sample of each batch.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

_P = "outpost_ingest_"

MESSAGES_RECEIVED = Counter(
    _P + "messages_received", "Messages received, by transport (mqtt, http).", ["transport"]
)
FIXES_STORED = Counter(_P + "fixes_stored", "Fixes newly committed to the database.")
DUPLICATES_IGNORED = Counter(
    _P + "duplicates_ignored", "Fixes already stored (same device and time): redeliveries, replayed buffers."
)
FIXES_SPOOLED = Counter(_P + "fixes_spooled", "Fixes written to the local spool while the database was down.")
FIXES_DROPPED = Counter(
    _P + "fixes_dropped", "Fixes dropped: only ever non-zero with a safeguard switched off (test controls)."
)
REJECTED = Counter(_P + "rejected", "Dead-lettered fixes or messages, by reason.", ["reason"])
IGNORED = Counter(
    _P + "ignored",
    "Valid messages not stored: without a position, or dropped off duty (never errors), by kind.",
    ["kind"],
)
DEVICE_MESSAGES = Counter(_P + "device_messages", "Device replies and alarms forwarded, by kind.", ["kind"])
UNAUTHORIZED = Counter(
    _P + "http_unauthorized", "HTTP requests refused for a missing or wrong device secret."
)
STORE_UNAVAILABLE = Counter(
    _P + "store_unavailable", "Writes the database refused (then spooled or retried)."
)
BATCH_SIZE = Histogram(
    _P + "batch_size",
    "Fixes and dead letters per flushed batch.",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000, 20000, 50000),
)
FLUSH_SECONDS = Histogram(
    _P + "flush_seconds",
    "Time to make one batch durable (database commit or spool fsync).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
LAG_SECONDS = Histogram(
    _P + "lag_seconds",
    "End-to-end lag of committed fixes, from receipt or from the device's timestamp (sampled per batch).",
    ["since"],
    buckets=_LAG_BUCKETS,
)
SPOOL_BYTES = Gauge(_P + "spool_bytes", "Bytes of batches in the local spool waiting for the database.")
SPOOL_FIXES = Gauge(_P + "spool_fixes", "Fixes in the local spool waiting for the database.")
HOLDING = Gauge(
    _P + "holding",
    "1 while a batch is held because neither the database nor the spool can take it (spool full, or its "
    "disk full): nothing is acknowledged meanwhile. An operator's alarm: free the disk or bring the "
    "database back.",
)
SPOOL_REFUSALS = Counter(
    _P + "spool_refusals", "Batches the spool could not take (full, or a disk error), by cause.", ["cause"]
)
PENDING_MESSAGES = Gauge(_P + "pending_messages", "MQTT messages received and not yet acknowledged.")
MQTT_CONNECTED = Gauge(_P + "mqtt_connected", "1 while the ingest's MQTT session is up.")
MQTT_RECONNECTS = Counter(_P + "mqtt_reconnects", "MQTT connections established after the first.")
DEVICES_REGISTERED = Counter(_P + "devices_registered", "Unknown devices registered on first contact.")


def prepare(reasons: Iterable[str]) -> None:
    """Create the labelled series up front, so dashboards see zeros rather than gaps."""
    for reason in reasons:
        REJECTED.labels(reason)
    for transport in ("mqtt", "http"):
        MESSAGES_RECEIVED.labels(transport)
    for since in ("received", "device"):
        LAG_SECONDS.labels(since)


def add_counts(counter: Counter, counts: dict[str, int]) -> None:
    """Add a batch's per-label tallies to a labelled counter."""
    for label, n in counts.items():
        counter.labels(label).inc(n)


def observe_lag(received_s: Iterable[float], device_s: Iterable[float], now_s: float) -> None:
    """Record the lag of a sample of committed fixes (received→committed and device time→committed)."""
    received = LAG_SECONDS.labels("received")
    device = LAG_SECONDS.labels("device")
    for t in received_s:
        received.observe(max(now_s - t, 0.0))
    for t in device_s:
        device.observe(max(now_s - t, 0.0))
