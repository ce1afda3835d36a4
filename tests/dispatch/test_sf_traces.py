"""Real San Francisco taxi traces through Fleet.apply: nearest over HTTP equals a brute force, and a restart
from the stored fixes rebuilds the same picture."""

from __future__ import annotations

import csv
import gzip
import random
from datetime import datetime
from pathlib import Path

from dispatch.clock import ManualClock
from dispatch.fleet import Fleet
from geo import UnitPosition
from schemas.fix import Fix
from store import registry
from store.fixes import FixWriter
from tests.dispatch import brute
from tests.dispatch.conftest import running_api

TRACE = "sf_cabspotting_2008-05-30_1h_pdt1700.csv.gz"
KINDS = ("police", "auxiliary", "vehicle")
STATUSES = ("available", "available", "busy", "en_route", "on_scene", "off_duty")
SKILLS = ("first_aid", "lang_es", "dog_handler")


def _read(path: Path) -> list[Fix]:
    with gzip.open(path, "rt", newline="") as f:
        return [
            Fix(
                device_id=row["object_id"],
                unit_id=row["object_id"],
                ts=datetime.fromisoformat(row["ts_iso8601_utc"].replace("Z", "+00:00")),
                received_at=datetime.fromisoformat(row["ts_iso8601_utc"].replace("Z", "+00:00")),
                lon=float(row["lon"]),
                lat=float(row["lat"]),
                accuracy_m=None,
            )
            for row in csv.DictReader(f)
        ]


async def test_nearest_on_real_taxi_traces_equals_brute_force(shared_data: Path, pg_url: str) -> None:
    fixes = _read(shared_data / TRACE)
    end_s = max(f.ts.timestamp() for f in fixes)
    rng = random.Random(2008)
    cabs = sorted({f.device_id for f in fixes})
    attrs = {
        cab: (rng.choice(KINDS), rng.choice(STATUSES), frozenset(s for s in SKILLS if rng.random() < 0.3))
        for cab in cabs
    }
    async with running_api(pg_url, clock=ManualClock(end_s + 30)) as api:
        registry.insert_units_bulk(
            api.engine,
            [
                {"id": c, "name": c, "kind": k, "status": s, "skills": sorted(sk)}
                for c, (k, s, sk) in attrs.items()
            ],
        )
        await api.fleet.rebuild(api.engine, lookback_s=86400 * 365 * 30)
        writer = FixWriter(api.engine)
        for start in range(0, len(fixes), 500):  # time-ordered batches, as ingest delivers them
            batch = fixes[start : start + 500]
            writer.write(batch)
            api.fleet.apply(batch)

        # The truth, computed without the fleet: each cab's last fix, with its attributes.
        last: dict[str, Fix] = {}
        for f in fixes:
            if f.device_id not in last or f.ts > last[f.device_id].ts:
                last[f.device_id] = f
        truth = [
            UnitPosition(c, f.lon, f.lat, f.ts.timestamp(), None, attrs[c][1], attrs[c][0], attrs[c][2])
            for c, f in last.items()
            if attrs[c][1] != "off_duty"
        ]
        assert len(truth) > 300

        queries = [
            ("", {}),
            ("&k=10&status=any", {"k": 10, "statuses": None}),
            (
                "&status=available,en_route&kind=police,vehicle",
                {"statuses": ("available", "en_route"), "kinds": ("police", "vehicle")},
            ),
            ("&skill=first_aid&max_age_s=120", {"skills": ("first_aid",), "max_age_s": 120.0}),
            ("&radius_m=1500&k=20", {"radius_m": 1500.0, "k": 20}),
        ]
        for _ in range(8):
            lon, lat = rng.uniform(-122.51, -122.37), rng.uniform(37.71, 37.81)
            for suffix, overrides in queries:
                body = await api.json(
                    "GET", f"/v1/units/nearest?lon={lon!r}&lat={lat!r}{suffix}", role="viewer"
                )
                query = brute.Query(lon=lon, lat=lat, now_s=end_s + 30, max_age_s=api.settings.max_fix_age_s)
                query = brute.Query(**{**query.__dict__, **overrides})
                expected, excluded = brute.nearest(truth, query)
                assert [(u["id"], u["distance_m"]) for u in body["units"]] == expected, suffix
                assert body["excluded"] == excluded, suffix

        restarted = Fleet(api.engine, ManualClock(end_s + 30), api.settings)
        await restarted.rebuild(api.engine, lookback_s=7200)
        assert sorted(restarted.index) == sorted(api.fleet.index)
