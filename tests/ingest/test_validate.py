"""Validation rules with an injected clock: named reasons, flags, per-device speed and order state."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from geo.distance import destination
from ingest.decode import DECODE_REASONS, Candidate, decode_mqtt, decode_traccar_http
from ingest.rules import VALIDATE_REASONS
from ingest.settings import IngestSettings
from ingest.validate import REASONS, DeviceInfo, Rejected, Validator
from schemas.fix import Fix, FixFlag
from tests.ingest.payloads import read

NOW = datetime(2025, 3, 14, 8, 30, tzinfo=UTC)
SETTINGS = IngestSettings()
DEVICE = DeviceInfo(device_id="cam-1", enabled=True, unit_id="unit-7", kind="body_cam", has_credentials=True)
LON, LAT = 4.895168, 52.370216


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, at: datetime) -> None:
        self.now_s = at.timestamp()

    def __call__(self) -> float:
        return self.now_s


def candidate(ago_s: float = 0.0, lon: float = LON, lat: float = LAT, **fields: object) -> Candidate:
    return Candidate(device_id="cam-1", ts=NOW - timedelta(seconds=ago_s), lon=lon, lat=lat, **fields)  # type: ignore[arg-type]


def moved(distance_m: float, bearing_deg: float = 90.0) -> tuple[float, float]:
    return destination(LON, LAT, bearing_deg, distance_m)


@pytest.fixture
def validator() -> Validator:
    return Validator(SETTINGS, clock=Clock(NOW))


def check(v: Validator, c: Candidate, device: DeviceInfo | None = DEVICE) -> Fix | Rejected:
    return v.check(c, device, received_at=NOW)


def flags(v: Validator, c: Candidate, device: DeviceInfo = DEVICE) -> int:
    """The flags of a fix that must have been accepted."""
    fix = check(v, c, device)
    assert isinstance(fix, Fix), fix
    return fix.flags


def test_a_good_fix_is_accepted_with_its_unit_and_no_flags(validator: Validator) -> None:
    fix = check(validator, candidate(accuracy_m=5.0, seq=9, battery_pct=80.0))
    assert isinstance(fix, Fix)
    assert (fix.device_id, fix.unit_id, fix.flags, fix.seq, fix.received_at) == ("cam-1", "unit-7", 0, 9, NOW)
    assert (fix.lon, fix.lat, fix.accuracy_m, fix.battery_pct) == (LON, LAT, 5.0, 80.0)


@pytest.mark.parametrize(
    ("c", "reason"),
    [
        (candidate(lat=math.nan), "non_finite"),
        (candidate(lon=math.inf), "non_finite"),
        (candidate(speed_mps=math.nan), "non_finite"),
        (candidate(heading_deg=-math.inf), "non_finite"),
        (candidate(lat=90.0001), "lat_out_of_range"),
        (candidate(lat=-91.0), "lat_out_of_range"),
        (candidate(lon=180.5), "lon_out_of_range"),
        (candidate(lon=0.0, lat=0.0), "null_island"),
        (candidate(ago_s=-(SETTINGS.max_future_s + 1)), "future"),
        (candidate(ago_s=SETTINGS.max_past_s + 1), "too_old"),
        (candidate(accuracy_m=1e30), "value_out_of_range"),
    ],
)
def test_each_hard_rule_rejects_with_its_name(validator: Validator, c: Candidate, reason: str) -> None:
    assert check(validator, c) == Rejected(reasons=(reason,), device_id="cam-1")


def test_the_edges_of_the_ranges_are_accepted(validator: Validator) -> None:
    for c in (candidate(lat=90.0, lon=180.0), candidate(lat=-90.0, lon=-180.0, ago_s=1)):
        assert isinstance(check(validator, c), Fix)
    assert isinstance(check(validator, candidate(ago_s=-SETTINGS.max_future_s)), Fix)
    assert isinstance(check(validator, candidate(lon=0.0, lat=0.5, ago_s=3)), Fix)  # only (0, 0) exactly


def test_unknown_and_disabled_devices_are_rejected(validator: Validator) -> None:
    assert check(validator, candidate(), None) == Rejected(reasons=("unknown_device",), device_id="cam-1")
    disabled = DeviceInfo(device_id="cam-1", enabled=False, unit_id="unit-7", has_credentials=True)
    assert check(validator, candidate(), disabled) == Rejected(
        reasons=("disabled_device",), device_id="cam-1"
    )


def test_a_device_without_credentials_is_refused_unless_the_station_runs_open(validator: Validator) -> None:
    bare = DeviceInfo(device_id="cam-1", enabled=True, unit_id="unit-7")  # the old default: no secret
    assert check(validator, candidate(), bare) == Rejected(reasons=("no_credentials",), device_id="cam-1")
    # A disabled one is refused for that alone: one reason, the one to act on first.
    off = DeviceInfo(device_id="cam-1", enabled=False, unit_id="unit-7")
    assert check(validator, candidate(), off) == Rejected(reasons=("disabled_device",), device_id="cam-1")
    open_mode = Validator(replace(SETTINGS, register_unknown_devices=True), clock=Clock(NOW))
    assert isinstance(check(open_mode, candidate(), bare), Fix)


def test_every_reason_that_fires_is_collected(validator: Validator) -> None:
    c = candidate(ago_s=-3600, lat=123.0, lon=-200.0)
    out = check(validator, c, None)
    assert out == Rejected(
        reasons=("lat_out_of_range", "lon_out_of_range", "future", "unknown_device"), device_id="cam-1"
    )


def test_a_nan_coordinate_is_non_finite_only(validator: Validator) -> None:
    out = check(validator, candidate(lat=math.nan, lon=math.nan))
    assert isinstance(out, Rejected) and out.reasons == ("non_finite",)


def test_soft_flags_store_the_fix(validator: Validator) -> None:
    unbound = DeviceInfo(device_id="cam-1", enabled=True, unit_id=None, has_credentials=True)
    fix = check(validator, candidate(accuracy_m=SETTINGS.max_accuracy_m + 1, mock=True), unbound)
    assert isinstance(fix, Fix)
    assert fix.flags == FixFlag.LOW_ACCURACY | FixFlag.MOCK | FixFlag.NO_UNIT
    assert fix.unit_id is None


def test_an_older_fix_is_stored_flagged_out_of_order(validator: Validator) -> None:
    assert flags(validator, candidate(ago_s=10)) == 0
    assert flags(validator, candidate(ago_s=20)) == FixFlag.OUT_OF_ORDER
    assert flags(validator, candidate(ago_s=10)) == 0  # same ts: a duplicate


def test_an_impossible_jump_is_flagged_and_never_becomes_the_reference(validator: Validator) -> None:
    assert flags(validator, candidate(ago_s=60)) == 0
    far_lon, far_lat = moved(10_000)  # 10 km in 10 s
    jump = check(validator, candidate(ago_s=50, lon=far_lon, lat=far_lat))
    assert isinstance(jump, Fix) and jump.flags == FixFlag.IMPOSSIBLE_SPEED
    near_lon, near_lat = moved(300)  # 300 m in 20 s from the reference: fine
    assert flags(validator, candidate(ago_s=40, lon=near_lon, lat=near_lat)) == 0


def test_a_fast_but_possible_move_is_not_flagged(validator: Validator) -> None:
    check(validator, candidate(ago_s=60))
    lon, lat = moved(SETTINGS.max_speed_mps * 60 * 0.95)
    assert flags(validator, candidate(lon=lon, lat=lat)) == 0


def test_jitter_within_one_second_and_the_reported_accuracy_is_not_impossible(validator: Validator) -> None:
    check(validator, candidate(accuracy_m=30.0))
    lon, lat = moved(100)  # same timestamp, 100 m apart, 30 m + 30 m accuracy
    assert flags(validator, candidate(lon=lon, lat=lat, accuracy_m=30.0)) == 0


def test_two_consistent_fixes_outvote_a_wrong_reference(validator: Validator) -> None:
    check(validator, candidate(ago_s=30))  # say the first fix after a restart was 50 km off
    lon1, lat1 = moved(50_000)
    lon2, lat2 = moved(50_050)
    assert flags(validator, candidate(ago_s=20, lon=lon1, lat=lat1)) == FixFlag.IMPOSSIBLE_SPEED
    assert flags(validator, candidate(ago_s=10, lon=lon2, lat=lat2)) == 0
    lon3, lat3 = moved(50_100)
    assert flags(validator, candidate(lon=lon3, lat=lat3)) == 0  # re-anchored


def test_low_accuracy_fixes_are_not_a_reference(validator: Validator) -> None:
    check(validator, candidate(ago_s=30))
    lon, lat = moved(2_000)
    coarse = flags(validator, candidate(ago_s=20, lon=lon, lat=lat, accuracy_m=1_900.0))
    assert coarse == FixFlag.LOW_ACCURACY  # possible within its accuracy
    assert flags(validator, candidate(ago_s=19)) == 0


def test_state_is_per_device(validator: Validator) -> None:
    check(validator, candidate(ago_s=10))
    other = Candidate(device_id="cam-2", ts=NOW - timedelta(seconds=20), lon=10.0, lat=50.0)
    fix = validator.check(other, DeviceInfo("cam-2", True, "unit-8", has_credentials=True), received_at=NOW)
    assert isinstance(fix, Fix) and fix.flags == 0


def test_seed_restores_order_and_speed_state_after_a_restart() -> None:
    first = Validator(SETTINGS, clock=Clock(NOW))
    stored = check(first, candidate(ago_s=30))
    assert isinstance(stored, Fix)
    restarted = Validator(SETTINGS, clock=Clock(NOW))
    restarted.seed([stored])
    assert flags(restarted, candidate(ago_s=40)) == FixFlag.OUT_OF_ORDER
    lon, lat = moved(20_000)
    assert flags(restarted, candidate(ago_s=20, lon=lon, lat=lat)) == FixFlag.IMPOSSIBLE_SPEED


def test_seed_skips_flagged_fixes_as_references() -> None:
    v = Validator(SETTINGS, clock=Clock(NOW))
    lon, lat = moved(20_000)
    good = Fix(device_id="cam-1", ts=NOW - timedelta(seconds=30), lon=LON, lat=LAT, received_at=NOW)
    glitch = Fix(device_id="cam-1", ts=NOW - timedelta(seconds=25), lon=lon, lat=lat, received_at=NOW,
                 flags=FixFlag.IMPOSSIBLE_SPEED)  # fmt: skip
    v.seed([glitch, good])
    assert flags(v, candidate(ago_s=20)) == 0


def test_reasons_name_every_decode_and_validate_reason_once() -> None:
    assert len(REASONS) == len(set(REASONS))
    assert set(REASONS) == set(DECODE_REASONS) | set(VALIDATE_REASONS)
    for name in ("invalid_utf8", "invalid_json", "invalid_schema", "missing_field", "too_large",
                 "unknown_topic", "identity_mismatch", "non_finite", "null_island", "future", "too_old",
                 "unknown_device", "disabled_device", "lat_out_of_range", "lon_out_of_range"):  # fmt: skip
        assert name in REASONS


def test_real_payloads_pass_validation_end_to_end() -> None:
    """Decoded captured payloads validate as fixes when the clock is near their time."""
    cases = [
        decode_mqtt("owntracks/jane/phone", read("owntracks/location_android.json")),
        decode_mqtt("outpost/v1/devices/cam-1/fix", read("outpost/buffer_flush.json")),
        decode_traccar_http({}, read("traccar/client9_ios_mock.json"), "application/json"),
    ]
    for decoded in cases:
        for c in decoded.candidates:
            v = Validator(SETTINGS, clock=Clock(c.ts + timedelta(seconds=2)))
            fix = v.check(
                c,
                DeviceInfo(c.device_id, True, "unit-1", has_credentials=True),
                received_at=c.ts + timedelta(seconds=1),
            )
            assert isinstance(fix, Fix), fix
            assert fix.flags & ~FixFlag.MOCK == 0
    (doc,) = decode_traccar_http({}, read("traccar/osmand_doc.json"), "application/json").candidates
    v = Validator(SETTINGS, clock=Clock(doc.ts))
    out = v.check(doc, DeviceInfo(doc.device_id, True, None, has_credentials=True), received_at=doc.ts)
    assert isinstance(out, Rejected) and out.reasons == ("null_island",)
