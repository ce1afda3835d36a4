"""Chaos: `outpost run` is killed -9 while an incident's offer waits for its officer. After the restart the
offer's stored timeout fires, the incident goes to the next unit, and no offer reaches a phone twice."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ingest.mqtt.publisher import Publisher
from tests.ingest.mqtt_collect import Collected, collect
from tests.sim.outpost_process import OutpostProcess
from tests.support.http import call
from tests.support.services import Mosquitto

pytestmark = pytest.mark.slow

INCIDENT = (-122.4190, 37.7795)
NEAR = {"kill-a": (-122.4194, 37.7793), "kill-b": (-122.4230, 37.7810)}  # ~40 m and ~380 m away


async def until(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not in {timeout_s:.0f} s: {what}")
        await asyncio.sleep(0.25)


def offers_to(phones: Collected, device_id: str) -> list[dict[str, Any]]:
    topic = f"outpost/v1/devices/{device_id}/offers"
    decoded = [msgspec.json.decode(p) for t, p in phones.messages if t == topic]
    return [m for m in decoded if m.get("type") == "offer"]


async def kill_with_an_offer_pending(
    pg_url: str, mosquitto: Mosquitto, tmp_path: Path, env: dict[str, str]
) -> Collected:
    """Two units, an incident offered to the nearer, kill -9, restart; what the phones received by the time
    the farther unit was offered (or 60 s after the restart: AssertionError)."""
    outpost = OutpostProcess(pg_url, mosquitto.url, tmp_path, {"OUTPOST_OFFER_TIMEOUT_S": "8", **env}).start()
    try:
        async with (
            collect(mosquitto.port, "outpost/v1/devices/+/offers") as phones,
            Publisher(mosquitto.url, "kill-phones") as devices,
        ):
            for device, (lon, lat) in NEAR.items():
                fix = {"ts": int(time.time() * 1000), "lon": lon, "lat": lat, "acc_m": 5, "seq": 1}
                devices.publish(f"outpost/v1/devices/{device}/fix", json.dumps(fix).encode(), 1)
            await devices.flush(timeout_s=10)
            near = f"{outpost.http_url}/v1/units/nearest?lon={INCIDENT[0]}&lat={INCIDENT[1]}&k=2"
            await until(
                lambda: (
                    [u["id"] for u in call("GET", near, outpost.token)[1].get("units", [])]
                    == ["kill-a", "kill-b"]
                ),
                40,
                "both units in the live picture",
            )
            # Open mode registers a device in the background: both registered before anything is killed.
            await until(
                lambda: len(call("GET", f"{outpost.http_url}/v1/units", outpost.token)[1]["units"]) == 2,
                40,
                "both units registered",
            )
            status, incident = call(
                "POST",
                f"{outpost.http_url}/v1/incidents",
                outpost.token,
                {
                    "lon": INCIDENT[0],
                    "lat": INCIDENT[1],
                    "category": "assault",
                    "priority": "P2",
                    "source": "call",
                },
            )
            assert status == 201, incident
            await until(lambda: offers_to(phones, "kill-a"), 40, "the offer on the nearest officer's phone")

            assert outpost.proc is not None
            outpost.proc.kill()  # SIGKILL: the offer is pending, its timer was in memory only
            outpost.proc.wait()
            outpost.start()  # the same database and broker; the stored deadline re-armed at start

            await until(lambda: offers_to(phones, "kill-b"), 60, "the next unit offered after the timeout")
            await asyncio.sleep(2.0)  # a second copy of either offer would be on its way by now
            _, record = call("GET", f"{outpost.http_url}/v1/incidents/{incident['id']}", outpost.token)
        states = {o["unit_id"]: o["state"] for o in record["offers"]}
        assert states == {"kill-a": "timed_out", "kill-b": "pending"}, record["offers"]
        return phones
    finally:
        outpost.close()


async def test_kill_9_with_an_offer_pending_resumes_its_timer_and_sends_no_offer_twice(
    pg_url: str, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    phones = await kill_with_an_offer_pending(pg_url, mosquitto, tmp_path, {})
    sent = Counter(m["offer_id"] for d in NEAR for m in offers_to(phones, d))
    assert len(offers_to(phones, "kill-a")) == 1, phones.messages
    assert len(offers_to(phones, "kill-b")) == 1, phones.messages
    assert set(sent.values()) == {1}, f"an offer sent twice: {sent}"


async def test_negative_control_timers_in_memory_only_leave_the_incident_with_a_dead_offer(
    pg_url: str, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    with pytest.raises(AssertionError, match="the next unit offered after the timeout"):
        await kill_with_an_offer_pending(
            pg_url, mosquitto, tmp_path, {"OUTPOST_UNSAFE_FORGET_TIMERS": "true"}
        )
