"""What one load test run does, checked before anything is sent: every run is bounded in count and time."""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field
from pathlib import Path

BBox = tuple[float, float, float, float]
"""(min_lon, min_lat, max_lon, max_lat) in degrees."""

# Central San Francisco: the area of the shared traces and of the demo.
DEFAULT_AREA: BBox = (-122.48, 37.73, -122.38, 37.80)
FORMATS = ("outpost", "owntracks", "http")
# Formats whose timestamps have one-second resolution and no seq: one fix per device per second at most,
# or two fixes would share (device_id, ts) and the store would rightly keep only one.
SECOND_RESOLUTION_FORMATS = ("owntracks", "http")

# Hard bounds: a load test is a tool pointed at a real installation, so a typo must not become a flood.
MAX_DEVICES = 100_000
MAX_DURATION_S = 3600.0
MAX_MESSAGES = 50_000_000
MAX_DISPATCH_QPS = 10_000.0


class PlanError(ValueError):
    """The requested run is impossible or unbounded; the message says which option and why."""


@dataclass(frozen=True)
class Plan:
    """One run's parameters. Device ids are `lt-<run_id>-d<NNNNNN>`, so the oracle finds this run's rows."""

    devices: int
    rate_hz: float  # fixes per second per device
    duration_s: float
    mqtt_url: str = ""
    http_url: str = ""
    token: str = ""
    qos: int = 1
    format: str = "outpost"
    bad_share: float = 0.0  # share of messages that are deliberately invalid
    redeliver_share: float = 0.0  # share of valid messages published a second time, same seq and ts
    connections: int = 1  # MQTT connections the fleet's messages are spread over
    dispatch_rate_qps: float = 0.0  # nearest-unit queries per second, all dispatcher clients together
    dispatch_clients: int = 4
    incident_rate_per_s: float = 0.0
    probe_rate_hz: float = 2.0  # publish → visible probes per second (needs http_url)
    probe_devices: int = 4
    area: BBox = DEFAULT_AREA
    traces: Path | None = None
    db_url: str = ""
    http_ingest_path: str = "/ingest/osmand"
    drain_timeout_s: float = 30.0
    outpost_pids: tuple[int, ...] = ()
    seed: int = 1
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))

    @property
    def run_tag(self) -> str:
        """Every device id of this run starts with it, whatever the format (the oracle's LIKE pattern)."""
        return f"lt-{self.run_id}"

    @property
    def device_prefix(self) -> str:
        """Device ids are this prefix plus the fleet's device name."""
        return self.run_tag + "-"

    @property
    def fleet_messages(self) -> int:
        """How many first-time fleet messages the run sends (bad ones included, redeliveries not)."""
        return math.floor(self.devices * self.rate_hz * self.duration_s)

    def check(self) -> None:
        """Raise `PlanError` unless the run is possible and bounded."""
        _require(0 < self.devices <= MAX_DEVICES, f"--devices must be 1..{MAX_DEVICES}")
        _require(0 < self.rate_hz <= 100.0, "--rate must be in (0, 100] fixes per second per device")
        _require(0 < self.duration_s <= MAX_DURATION_S, f"--duration must be in (0, {MAX_DURATION_S:g}] s")
        _require(self.fleet_messages <= MAX_MESSAGES, f"devices × rate × duration exceeds {MAX_MESSAGES}")
        _require(self.format in FORMATS, f"--format must be one of {', '.join(FORMATS)}")
        _require(self.qos in (0, 1), "--qos must be 0 or 1")
        _require(0.0 <= self.bad_share < 1.0, "--bad-share must be in [0, 1)")
        _require(0.0 <= self.redeliver_share <= 1.0, "--redeliver-share must be in [0, 1]")
        _require(1 <= self.connections <= 64, "--connections must be 1..64")
        _require(0.0 <= self.dispatch_rate_qps <= MAX_DISPATCH_QPS, "--dispatch-rate must be 0..10000")
        _require(0.0 <= self.incident_rate_per_s <= 100.0, "--incident-rate must be 0..100 per second")
        _require(1 <= self.dispatch_clients <= 256, "--dispatch-clients must be 1..256")
        _require(0.0 <= self.probe_rate_hz <= 50.0, "--probe-rate must be 0..50 per second")
        _require(0 < self.probe_devices <= 100, "--probe-devices must be 1..100")
        _require(self.drain_timeout_s >= 0, "--drain-timeout must be >= 0")
        if self.format in SECOND_RESOLUTION_FORMATS:
            _require(self.rate_hz <= 1.0, f"--format {self.format} carries no seq: --rate must be <= 1")
        if self.format == "http":
            _require(bool(self.http_url), "--format http needs --http-url")
        else:
            _require(bool(self.mqtt_url), f"--format {self.format} needs --mqtt-url")
        min_lon, min_lat, max_lon, max_lat = self.area
        _require(
            -180 <= min_lon < max_lon <= 180 and -90 <= min_lat < max_lat <= 90,
            "--area must be min_lon,min_lat,max_lon,max_lat",
        )
        if self.traces is not None:
            _require(self.traces.is_file(), f"--traces {self.traces}: no such file")
        needs_api = self.dispatch_rate_qps > 0 or self.incident_rate_per_s > 0
        _require(not needs_api or bool(self.http_url), "--dispatch-rate/--incident-rate need --http-url")


def parse_bbox(text: str) -> BBox:
    """`min_lon,min_lat,max_lon,max_lat` → a bbox (raises ValueError)."""
    parts = [float(p) for p in text.split(",")]
    if len(parts) != 4 or not all(math.isfinite(p) for p in parts):
        raise ValueError(f"expected min_lon,min_lat,max_lon,max_lat, got {text!r}")
    return (parts[0], parts[1], parts[2], parts[3])


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise PlanError(message)
