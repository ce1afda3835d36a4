"""The ingest pipeline end to end on a real Mosquitto and a real PostgreSQL: real clients' messages are
stored once; every bad payload class is dead-lettered with its reason and counted."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine

from ingest.devices import DeviceDirectory
from ingest.pipeline import Pipeline
from ingest.runner import build_pipeline
from ingest.settings import IngestSettings
from ingest.validate import DeviceInfo
from store.engine import open_engine
from store.fixes import count_fixes, count_rejected, fetch_fixes
from tests.ingest.ingest_harness import (
    Accepted,
    count,
    ingest_settings,
    mosquitto_pub,
    own_fix,
    register,
    running_ingest,
    wait_for,
)
from tests.support.services import Mosquitto, free_port

TOPIC = "outpost/v1/devices/{}/fix"


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_mosquitto_pub_fix_is_stored_once(
    mosquitto: Mosquitto, pg_engine: Engine, tmp_path: Path
) -> None:
    register(pg_engine, "cam-1")
    accepted = Accepted()
    settings = ingest_settings(mosquitto.url, tmp_path)
    flushes = metric("outpost_ingest_flush_seconds_count")
    lags = metric("outpost_ingest_lag_seconds_count", since="received")
    received = metric("outpost_ingest_messages_received_total", transport="mqtt")
    async with running_ingest(settings, pg_engine, on_accepted=accepted):
        payload = own_fix(1)
        await mosquitto_pub(mosquitto.port, TOPIC.format("cam-1"), payload)
        await wait_for(lambda: count_fixes(pg_engine) == 1, what="the fix stored")
        await mosquitto_pub(mosquitto.port, TOPIC.format("cam-1"), payload)  # a redelivery, as far as we know
        await wait_for(lambda: len(accepted.fixes) == 2, what="the duplicate processed")
    [fix] = fetch_fixes(pg_engine, device_id="cam-1")
    assert (fix.unit_id, fix.seq, fix.lat, fix.lon) == ("cam-1", 1, 37.77, -122.42)
    assert count_fixes(pg_engine) == 1
    assert metric("outpost_ingest_messages_received_total", transport="mqtt") - received == 2
    assert metric("outpost_ingest_flush_seconds_count") - flushes >= 2
    assert metric("outpost_ingest_lag_seconds_count", since="received") - lags >= 2
    assert REGISTRY.get_sample_value("outpost_ingest_spool_bytes") is not None


async def test_owntracks_payload_is_stored(mosquitto: Mosquitto, pg_engine: Engine, tmp_path: Path) -> None:
    register(pg_engine, "alice/phone", unit_id="unit-a")
    payload = {
        "_type": "location",
        "lat": 37.7793,
        "lon": -122.4193,
        "tst": int(time.time()) - 5,
        "acc": 12,
        "vel": 36,
        "cog": 90,
        "batt": 81,
        "tid": "ap",
    }
    async with running_ingest(ingest_settings(mosquitto.url, tmp_path), pg_engine):
        await mosquitto_pub(mosquitto.port, "owntracks/alice/phone", json.dumps(payload).encode())
        await mosquitto_pub(
            mosquitto.port, "owntracks/alice/phone", b'{"_type":"transition","event":"enter"}'
        )
        await wait_for(lambda: count_fixes(pg_engine) == 1, what="the OwnTracks fix stored")
    [fix] = fetch_fixes(pg_engine, device_id="alice/phone")
    assert fix.unit_id == "unit-a"
    assert fix.speed_mps == pytest.approx(10.0)  # 36 km/h
    assert count_rejected(pg_engine) == 0


async def test_offline_buffer_array_is_stored_and_replay_is_idempotent(
    mosquitto: Mosquitto, pg_engine: Engine, tmp_path: Path
) -> None:
    register(pg_engine, "tracker-9")
    base_ms = int(time.time() * 1000) - 600_000
    buffer = json.dumps(
        [{"ts": base_ms + i * 1000, "lat": 37.70 + i * 1e-4, "lon": -122.40, "seq": i} for i in range(50)]
    ).encode()
    async with running_ingest(ingest_settings(mosquitto.url, tmp_path), pg_engine):
        await mosquitto_pub(mosquitto.port, TOPIC.format("tracker-9"), buffer)
        await wait_for(lambda: count_fixes(pg_engine) == 50)
        before = metric("outpost_ingest_duplicates_ignored_total")
        await mosquitto_pub(mosquitto.port, TOPIC.format("tracker-9"), buffer)
        await wait_for(lambda: metric("outpost_ingest_duplicates_ignored_total") - before == 50)
    assert count_fixes(pg_engine) == 50
    assert [f.seq for f in fetch_fixes(pg_engine, device_id="tracker-9")] == list(range(50))


BAD = {
    "invalid_json": ("cam-1", b'{"ts": 1, "lat": '),
    "invalid_utf8": ("cam-1", b'{"ts": 1, "lat": "\xff\xfe"}'),
    "too_large": ("cam-1", b'{"pad": "' + b"x" * 5000 + b'"}'),
    "missing_field": ("cam-1", b'{"lat": 37.7, "lon": -122.4}'),
    "non_finite": ("cam-1", b'{"ts": %d, "lat": 1e999, "lon": -122.4}'),
    "lat_out_of_range": ("cam-1", b'{"ts": %d, "lat": 97.7, "lon": -122.4}'),
    "lon_out_of_range": ("cam-1", b'{"ts": %d, "lat": 37.7, "lon": -222.4}'),
    "null_island": ("cam-1", b'{"ts": %d, "lat": 0, "lon": 0}'),
    "future": ("cam-1", b'{"ts": 4102444800000, "lat": 37.7, "lon": -122.4}'),
    "too_old": ("cam-1", b'{"ts": 946684800000, "lat": 37.7, "lon": -122.4}'),
    "identity_mismatch": ("cam-1", b'{"device_id": "cam-2", "ts": %d, "lat": 37.7, "lon": -122.4}'),
    "unknown_device": ("ghost", b'{"ts": %d, "lat": 37.7, "lon": -122.4}'),
    "disabled_device": ("cam-off", b'{"ts": %d, "lat": 37.7, "lon": -122.4}'),
}


async def test_every_bad_payload_class_is_dead_lettered_and_counted(
    mosquitto: Mosquitto, pg_engine: Engine, tmp_path: Path
) -> None:
    register(pg_engine, "cam-1")
    register(pg_engine, "cam-off", enabled=False)
    before = {reason: metric("outpost_ingest_rejected_total", reason=reason) for reason in BAD}
    now_ms = int(time.time() * 1000)
    settings = ingest_settings(mosquitto.url, tmp_path, max_payload_bytes=4096)
    async with running_ingest(settings, pg_engine):
        for i, (device, template) in enumerate(BAD.values()):
            payload = template % (now_ms - 1000 * i) if b"%d" in template else template
            await mosquitto_pub(mosquitto.port, TOPIC.format(device), payload)
        await wait_for(lambda: count_rejected(pg_engine) == len(BAD), what="every dead letter stored")
    assert count_fixes(pg_engine) == 0
    for reason in BAD:
        assert count_rejected(pg_engine, reason) == 1, reason
        assert metric("outpost_ingest_rejected_total", reason=reason) - before[reason] == 1, reason
    raw = count(
        pg_engine,
        "SELECT count(*) FROM rejected_messages WHERE source = :t AND length(raw) > 0",
        t=TOPIC.format("ghost"),
    )
    assert raw == 1


async def test_unknown_device_is_registered_with_a_unit_when_enabled(
    mosquitto: Mosquitto, pg_engine: Engine, tmp_path: Path
) -> None:
    settings = ingest_settings(mosquitto.url, tmp_path, register_unknown_devices=True)
    async with running_ingest(settings, pg_engine):
        await mosquitto_pub(mosquitto.port, TOPIC.format("new-phone"), own_fix(1))
        await wait_for(lambda: count_fixes(pg_engine) == 1)
        await wait_for(lambda: count(pg_engine, "SELECT count(*) FROM device_bindings") == 1)
    assert (
        count(
            pg_engine,
            "SELECT count(*) FROM devices WHERE id = 'new-phone' AND kind = 'other'"
            " AND registered_by = 'auto'",
        )
        == 1
    )
    assert (
        count(
            pg_engine,
            "SELECT count(*) FROM units WHERE id = 'new-phone' AND kind = 'police' AND status = 'available'",
        )
        == 1
    )
    [fix] = fetch_fixes(pg_engine, device_id="new-phone")
    assert fix.unit_id == "new-phone"


async def test_device_registered_after_start_is_found_on_a_miss(
    mosquitto: Mosquitto, pg_engine: Engine, tmp_path: Path
) -> None:
    settings = ingest_settings(mosquitto.url, tmp_path, device_refresh_s=3600)
    async with running_ingest(settings, pg_engine):
        register(pg_engine, "late-cam")  # after the directory was loaded
        await mosquitto_pub(mosquitto.port, TOPIC.format("late-cam"), own_fix(1))
        await wait_for(lambda: count_fixes(pg_engine) == 1, what="the fix of a device the directory missed")
    assert count_rejected(pg_engine) == 0


def forwarding(
    mosquitto: Mosquitto, engine: Engine, tmp_path: Path
) -> tuple[IngestSettings, Pipeline, list[tuple[str, str, bytes]]]:
    """A pipeline whose device messages are collected in the list it returns."""
    got: list[tuple[str, str, bytes]] = []
    settings = ingest_settings(mosquitto.url, tmp_path)
    pipeline = build_pipeline(
        settings, engine, on_accepted=lambda f: None, on_device_message=lambda d, k, p: got.append((d, k, p))
    )
    return settings, pipeline, got


async def test_device_replies_and_alarms_are_forwarded(
    mosquitto: Mosquitto, pg_engine: Engine, tmp_path: Path
) -> None:
    register(pg_engine, "cam-1")
    settings, pipeline, got = forwarding(mosquitto, pg_engine, tmp_path)
    async with running_ingest(settings, pg_engine, pipeline=pipeline):
        # An unregistered device cannot raise an alarm (a P1 incident) nor answer an offer.
        await mosquitto_pub(mosquitto.port, "outpost/v1/devices/stranger/alarm", b'{"kind": "panic"}')
        await mosquitto_pub(mosquitto.port, "outpost/v1/devices/cam-1/reply", b'{"offer": 7, "accept": true}')
        await mosquitto_pub(mosquitto.port, "outpost/v1/devices/cam-1/alarm", b'{"kind": "panic"}')
        await wait_for(lambda: len(got) == 2)
    assert sorted(got) == [
        ("cam-1", "alarm", b'{"kind": "panic"}'),
        ("cam-1", "reply", b'{"offer": 7, "accept": true}'),
    ]


async def test_fixes_and_alarms_of_a_device_without_credentials_are_dead_lettered_over_mqtt(
    mosquitto: Mosquitto, pg_engine: Engine, tmp_path: Path
) -> None:
    """Over MQTT too, a registered device whose credentials were never issued is refused where the two
    paths meet (validation, the device-message check): its fix, its alarm and its reply are dead-lettered
    as `no_credentials` and counted; dispatch never sees them. A device with credentials beside it is
    taken."""
    register(pg_engine, "cam-7", secret=None)
    register(pg_engine, "cam-1")
    before = metric("outpost_ingest_rejected_total", reason="no_credentials")
    settings, pipeline, got = forwarding(mosquitto, pg_engine, tmp_path)
    async with running_ingest(settings, pg_engine, pipeline=pipeline):
        await mosquitto_pub(mosquitto.port, TOPIC.format("cam-7"), own_fix(1))
        await mosquitto_pub(mosquitto.port, "outpost/v1/devices/cam-7/alarm", b'{"kind": "panic"}')
        await mosquitto_pub(mosquitto.port, "outpost/v1/devices/cam-7/reply", b'{"offer": 7, "accept": true}')
        await mosquitto_pub(mosquitto.port, TOPIC.format("cam-1"), own_fix(1))
        await mosquitto_pub(mosquitto.port, "outpost/v1/devices/cam-1/alarm", b'{"kind": "panic"}')
        await wait_for(lambda: count_rejected(pg_engine, "no_credentials") == 3, what="three dead letters")
        await wait_for(lambda: count_fixes(pg_engine) == 1 and len(got) == 1, what="cam-1's fix and alarm")
    assert got == [("cam-1", "alarm", b'{"kind": "panic"}')]
    assert [f.device_id for f in fetch_fixes(pg_engine)] == ["cam-1"]
    assert count_rejected(pg_engine) == 3
    assert metric("outpost_ingest_rejected_total", reason="no_credentials") - before == 3


async def test_open_mode_takes_a_device_without_credentials_over_mqtt(
    mosquitto: Mosquitto, pg_engine: Engine, tmp_path: Path
) -> None:
    register(pg_engine, "cam-7", secret=None)
    got: list[tuple[str, str, bytes]] = []
    settings = ingest_settings(mosquitto.url, tmp_path, register_unknown_devices=True)
    pipeline = build_pipeline(
        settings,
        pg_engine,
        on_accepted=lambda f: None,
        on_device_message=lambda d, k, p: got.append((d, k, p)),
    )
    async with running_ingest(settings, pg_engine, pipeline=pipeline):
        await mosquitto_pub(mosquitto.port, TOPIC.format("cam-7"), own_fix(1))
        await mosquitto_pub(mosquitto.port, "outpost/v1/devices/cam-7/alarm", b'{"kind": "panic"}')
        await wait_for(lambda: count_fixes(pg_engine) == 1 and len(got) == 1, what="the fix and the alarm")
    assert count_rejected(pg_engine) == 0


async def test_status_checkin_and_answer_messages_are_shape_checked_and_refusals_dead_lettered(
    mosquitto: Mosquitto, pg_engine: Engine, tmp_path: Path
) -> None:
    register(pg_engine, "cam-1")
    register(pg_engine, "cam-off", enabled=False)
    settings, pipeline, got = forwarding(mosquitto, pg_engine, tmp_path)
    refused = {
        "outpost/v1/devices/stranger/status": (b'{"status": "on_duty"}', "unknown_device"),
        "outpost/v1/devices/cam-off/checkin": (b'{"checkin_id": "c1"}', "disabled_device"),
        "outpost/v1/devices/cam-1/status": (b'{"status": "asleep"}', "malformed_message"),
        "outpost/v1/devices/cam-1/checkin": (b"{}", "malformed_message"),
        "outpost/v1/devices/cam-1/answer": (b"nonsense", "malformed_message"),
    }
    async with running_ingest(settings, pg_engine, pipeline=pipeline):
        for topic, (payload, _) in refused.items():
            await mosquitto_pub(mosquitto.port, topic, payload)
        await mosquitto_pub(mosquitto.port, "outpost/v1/devices/cam-1/answer", b'{"rollcall_id": "r1"}')
        await wait_for(lambda: len(got) == 1 and count_rejected(pg_engine) == len(refused))
    assert got == [("cam-1", "answer", b'{"rollcall_id": "r1"}')]
    for reason in ("unknown_device", "disabled_device"):
        assert count_rejected(pg_engine, reason) == 1
    assert count_rejected(pg_engine, "malformed_message") == 3


async def test_the_directory_starts_from_its_cached_copy_when_the_database_is_down(
    pg_engine: Engine, tmp_path: Path
) -> None:
    register(pg_engine, "cam-1", secret="s3cret")
    cache = tmp_path / "devices.json"
    await DeviceDirectory(pg_engine, cache_path=cache).load_at_start()
    dead = open_engine(f"postgresql://nobody@127.0.0.1:{free_port()}/nothing", pool_size=1)
    try:
        directory = DeviceDirectory(dead, cache_path=cache)
        await asyncio.wait_for(directory.load_at_start(), 30)
    finally:
        dead.dispose()
    assert directory.get("cam-1") == DeviceInfo("cam-1", True, "cam-1", "phone", has_credentials=True)
    assert directory.secret_hash("cam-1") is not None


async def test_devices_without_credentials_are_counted_once_at_start(pg_engine: Engine) -> None:
    from ingest.devices import DeviceDirectory

    register(pg_engine, "legacy-1", secret=None)  # registered before credentials were required
    register(pg_engine, "current-1")
    directory = DeviceDirectory(pg_engine)
    await directory.load()
    assert directory.without_credentials() == 1
