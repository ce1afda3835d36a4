"""A restart rebuilds the same live picture from storage (PostgreSQL and SQLite)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from dispatch.clock import ManualClock
from dispatch.fleet import Fleet
from schemas.fix import Fix, FixFlag
from store import registry
from store.fixes import FixWriter
from tests.dispatch.conftest import START_S, LiveApi, fix

NOW = datetime.fromtimestamp(START_S, UTC)


def _history(rng: random.Random) -> list[Fix]:
    """Fixes of 40 units (a third with two or three devices), some flagged, some late, arriving in batches."""
    fixes = []
    for i in range(40):
        devices = [f"u{i}-d{j}" for j in range(1 + i % 3)]
        for step in range(6):
            for device_id in devices:
                flags = 0
                if rng.random() < 0.1:
                    flags = rng.choice([FixFlag.LOW_ACCURACY, FixFlag.IMPOSSIBLE_SPEED])
                ts_s = START_S - 600 + 60 * step + rng.randint(0, 30)
                # Accuracies exactly representable in float4, as PostgreSQL stores them.
                fixes.append(
                    fix(
                        device_id,
                        f"u{i}",
                        4.3 + rng.uniform(0, 0.1),
                        50.8 + rng.uniform(0, 0.1),
                        ts_s,
                        accuracy_m=rng.choice([None, 4.0, 12.5, 40.0]),
                        flags=flags,
                    )
                )
    rng.shuffle(fixes)  # late and out-of-order arrivals
    return fixes


async def test_restart_rebuilds_the_same_index(live_api: LiveApi) -> None:
    api = live_api
    rng = random.Random(5)
    statuses = ["available", "busy", "off_duty", "en_route"]
    registry.insert_units_bulk(
        api.engine,
        [
            {
                "id": f"u{i}",
                "name": f"unit {i}",
                "kind": ["police", "vehicle", "auxiliary"][i % 3],
                "skills": ["first_aid"] if i % 4 == 0 else [],
                "status": statuses[i % 4],
            }
            for i in range(40)
        ],
    )
    for i in range(40):
        for j in range(1 + i % 3):
            kind = ["body_cam", "phone", "radio"][j]
            registry.insert_device(api.engine, id=f"u{i}-d{j}", kind=kind, priority=j % 2, now=NOW)
            registry.insert_binding(
                api.engine,
                device_id=f"u{i}-d{j}",
                unit_id=f"u{i}",
                valid_from=datetime.fromtimestamp(START_S - 3600, UTC),
                valid_to=None,
            )
    await api.fleet.rebuild(api.engine, lookback_s=api.settings.index_lookback_s)
    writer = FixWriter(api.engine)
    history = _history(rng)
    for start in range(0, len(history), 50):  # what ingest does: store the batch, then hand it to the fleet
        batch = history[start : start + 50]
        writer.write(batch)
        api.fleet.apply(batch)
    await api.json("POST", "/v1/units/u1/status", role="dispatcher", json={"status": "off_duty"})
    await api.json("POST", "/v1/units/u2/status", role="dispatcher", json={"status": "available"})

    restarted = Fleet(api.engine, ManualClock(START_S), api.settings)
    await restarted.rebuild(api.engine, lookback_s=api.settings.index_lookback_s)
    assert len(api.fleet.index) > 20
    assert sorted(restarted.index) == sorted(api.fleet.index)
    for i in range(40):
        assert restarted.position(f"u{i}") == api.fleet.position(f"u{i}")
    assert restarted.nearest(4.35, 50.85, 10) == api.fleet.nearest(4.35, 50.85, 10)
