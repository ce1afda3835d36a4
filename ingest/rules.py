"""The validation rules, each small and named (in the spirit of Traccar's filters).

A hard rule returns the name of the reason it fires for (the fix is rejected with every reason that
fired) or None. A flag rule returns the FixFlag bits it sets on a fix that is stored all the same.
The stateful judgements (implied speed, order) live in ingest.validate.Validator.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import msgspec

from ingest.decode.model import Candidate
from ingest.device_info import DeviceInfo
from ingest.settings import IngestSettings
from schemas.fix import FixFlag

NON_FINITE = "non_finite"
LAT_OUT_OF_RANGE = "lat_out_of_range"
LON_OUT_OF_RANGE = "lon_out_of_range"
NULL_ISLAND = "null_island"
FUTURE = "future"
TOO_OLD = "too_old"
# Alongside too_old: the time reads as epoch seconds where milliseconds are expected (×1000 it is now).
TS_IN_SECONDS = "ts_in_seconds"
VALUE_OUT_OF_RANGE = "value_out_of_range"
UNKNOWN_DEVICE = "unknown_device"
DISABLED_DEVICE = "disabled_device"
NO_CREDENTIALS = "no_credentials"

VALIDATE_REASONS: tuple[str, ...] = (
    NON_FINITE,
    LAT_OUT_OF_RANGE,
    LON_OUT_OF_RANGE,
    NULL_ISLAND,
    FUTURE,
    TOO_OLD,
    TS_IN_SECONDS,
    VALUE_OUT_OF_RANGE,
    UNKNOWN_DEVICE,
    DISABLED_DEVICE,
    NO_CREDENTIALS,
)

# Optional measurements are stored as float4 (fixes.accuracy_m … battery_pct): anything beyond this is
# garbage, and beyond float4's 3.4e38 it would fail the whole COPY batch it is in.
MAX_MEASUREMENT_ABS = 1e9


class Facts(msgspec.Struct, gc=False):
    """What the rules look at: the candidate, its device, and the times, computed once."""

    c: Candidate
    device: DeviceInfo | None
    ts_s: float  # the fix's time, epoch seconds
    now_s: float  # the validator's clock
    settings: IngestSettings


# Plain ints: IntFlag arithmetic costs about a microsecond per operation on the hot path.
LOW_ACCURACY = int(FixFlag.LOW_ACCURACY)
MOCK = int(FixFlag.MOCK)
NO_UNIT = int(FixFlag.NO_UNIT)

HardRule = Callable[[Facts], str | None]
FlagRule = Callable[[Candidate, DeviceInfo, IngestSettings], int]


def _optionals(c: Candidate) -> tuple[float | None, ...]:
    return (c.accuracy_m, c.speed_mps, c.heading_deg, c.altitude_m, c.battery_pct)


def non_finite(f: Facts) -> str | None:
    """NaN or ±inf anywhere (a NaN box in the R-tree would be 'nearest' to every query)."""
    if not (math.isfinite(f.c.lon) and math.isfinite(f.c.lat)):
        return NON_FINITE
    for value in _optionals(f.c):
        if value is not None and not math.isfinite(value):
            return NON_FINITE
    return None


def lat_out_of_range(f: Facts) -> str | None:
    """Latitude outside [-90, 90] (a non-finite one is non_finite's alone)."""
    lat = f.c.lat
    return LAT_OUT_OF_RANGE if math.isfinite(lat) and not -90.0 <= lat <= 90.0 else None


def lon_out_of_range(f: Facts) -> str | None:
    """Longitude outside [-180, 180]."""
    lon = f.c.lon
    return LON_OUT_OF_RANGE if math.isfinite(lon) and not -180.0 <= lon <= 180.0 else None


def null_island(f: Facts) -> str | None:
    """Exactly (0, 0): what receivers without a fix report (Traccar's filter.zero)."""
    return NULL_ISLAND if f.c.lat == 0.0 and f.c.lon == 0.0 else None


def future(f: Facts) -> str | None:
    """Taken more than max_future_s after now: a device clock running ahead."""
    return FUTURE if f.ts_s > f.now_s + f.settings.max_future_s else None


def too_old(f: Facts) -> str | None:
    """Taken more than max_past_s before now."""
    return TOO_OLD if f.ts_s < f.now_s - f.settings.max_past_s else None


def ts_in_seconds(f: Facts) -> str | None:
    """Too old, but a thousand times later it would be in the window: epoch seconds sent as milliseconds
    (`ts` of Outpost's format), the commonest device bug; the reason says so, where too_old alone does not."""
    if f.ts_s >= f.now_s - f.settings.max_past_s:
        return None
    as_ms_s = f.ts_s * 1000.0
    window = f.now_s - f.settings.max_past_s <= as_ms_s <= f.now_s + f.settings.max_future_s
    return TS_IN_SECONDS if window else None


def value_out_of_range(f: Facts) -> str | None:
    """An optional measurement of absurd magnitude (it could not even be stored)."""
    for value in _optionals(f.c):
        if value is not None and math.isfinite(value) and abs(value) > MAX_MEASUREMENT_ABS:
            return VALUE_OUT_OF_RANGE
    return None


def unknown_device(f: Facts) -> str | None:
    """Not in the registry (the pipeline registers it first when register_unknown_devices is on)."""
    return UNKNOWN_DEVICE if f.device is None else None


def disabled_device(f: Facts) -> str | None:
    """Registered but switched off."""
    return DISABLED_DEVICE if f.device is not None and not f.device.enabled else None


def no_credentials(f: Facts) -> str | None:
    """Registered and enabled, but no credentials issued: anyone knowing its id could speak for it. Open
    mode (register_unknown_devices: demos, load tests) accepts it, as it accepts unknown devices."""
    device = f.device
    if device is None or not device.enabled or device.has_credentials:
        return None
    return None if f.settings.register_unknown_devices else NO_CREDENTIALS


HARD_RULES: tuple[HardRule, ...] = (
    non_finite,
    lat_out_of_range,
    lon_out_of_range,
    null_island,
    future,
    too_old,
    ts_in_seconds,
    value_out_of_range,
    unknown_device,
    disabled_device,
    no_credentials,
)


def low_accuracy(c: Candidate, d: DeviceInfo, s: IngestSettings) -> int:
    """Reported accuracy worse than max_accuracy_m: stored, not used for dispatch."""
    return LOW_ACCURACY if c.accuracy_m is not None and c.accuracy_m > s.max_accuracy_m else 0


def mock(c: Candidate, d: DeviceInfo, s: IngestSettings) -> int:
    """The device says its location may be spoofed."""
    return MOCK if c.mock else 0


def no_unit(c: Candidate, d: DeviceInfo, s: IngestSettings) -> int:
    """The device is bound to no unit."""
    return NO_UNIT if d.unit_id is None else 0


FLAG_RULES: tuple[FlagRule, ...] = (low_accuracy, mock, no_unit)
