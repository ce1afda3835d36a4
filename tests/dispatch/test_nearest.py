"""GET /v1/units/nearest equals a brute-force great-circle ranking, under every filter, with exclusions."""

from __future__ import annotations

import random
from typing import Any

import pytest

from schemas.tables.registry import UNIT_STATUSES
from store import registry
from tests.dispatch import brute
from tests.dispatch.conftest import START_S, LiveApi, fix

SKILLS = ("first_aid", "dog_handler", "lang_fr")


async def _populate(api: LiveApi, n: int, seed: int) -> None:
    rng = random.Random(seed)
    rows = [
        {
            "id": f"u{i:03d}",
            "name": f"unit {i}",
            "kind": rng.choice(["police", "auxiliary", "vehicle"]),
            "skills": [s for s in SKILLS if rng.random() < 0.3],
            "status": rng.choice([*UNIT_STATUSES, "available", "available"]),
        }
        for i in range(n)
    ]
    registry.insert_units_bulk(api.engine, rows)
    await api.fleet.rebuild(api.engine, lookback_s=3600)
    api.fleet.apply(
        [
            fix(
                f"d{r['id']}",
                str(r["id"]),
                4.35 + rng.uniform(-0.03, 0.03),
                50.85 + rng.uniform(-0.02, 0.02),
                START_S - rng.uniform(0, 600),
                accuracy_m=rng.choice([None, 4.0, 12.0, 40.0, 150.0]),
            )
            for r in rows
        ]
    )


QUERIES: list[dict[str, Any]] = [
    {},
    {"k": 1},
    {"k": 10, "status": "any"},
    {"status": "available,busy", "k": 7},
    {"status": ["available", "en_route"], "kind": "vehicle"},
    {"kind": "police,auxiliary", "skill": "first_aid"},
    {"skill": ["first_aid", "lang_fr"], "status": "any"},
    {"max_age_s": 120, "k": 4},
    {"radius_m": 800, "k": 50},
    {"max_accuracy_m": 15, "k": 3},
    {"max_age_s": 300, "radius_m": 2500, "max_accuracy_m": 50, "kind": "police", "k": 20},
    {"radius_m": 1, "k": 3},
]


def _as_query(params: dict[str, Any], lon: float, lat: float, default_age_s: float) -> brute.Query:
    def words(name: str) -> list[str] | None:
        v = params.get(name)
        if v is None:
            return None
        return [w for x in ([v] if isinstance(v, str) else v) for w in x.split(",")]

    statuses = words("status") or ["available"]
    return brute.Query(
        lon=lon,
        lat=lat,
        k=params.get("k", 5),
        statuses=None if "any" in statuses else statuses,
        kinds=words("kind"),
        skills=words("skill") or (),
        max_age_s=params.get("max_age_s", default_age_s),
        now_s=START_S,
        radius_m=params.get("radius_m"),
        max_accuracy_m=params.get("max_accuracy_m"),
    )


def _query_string(params: dict[str, Any], lon: float, lat: float) -> list[tuple[str, str]]:
    pairs = [("lon", repr(lon)), ("lat", repr(lat))]
    for name, value in params.items():
        for v in value if isinstance(value, list) else [value]:
            pairs.append((name, str(v)))
    return pairs


async def test_nearest_over_http_equals_brute_force(pg_api: LiveApi) -> None:
    api = pg_api
    await _populate(api, 300, seed=7)
    entries = list(api.fleet.index)
    rng = random.Random(11)
    for params in QUERIES:
        for _ in range(6):
            lon, lat = 4.35 + rng.uniform(-0.03, 0.03), 50.85 + rng.uniform(-0.02, 0.02)
            body = await api.json(
                "GET", "/v1/units/nearest", role="viewer", params=_query_string(params, lon, lat)
            )
            expected, excluded = brute.nearest(
                entries, _as_query(params, lon, lat, api.settings.max_fix_age_s)
            )
            assert [(u["id"], u["distance_m"]) for u in body["units"]] == expected, params
            assert body["excluded"] == excluded, params
            _check_explained(body)


def _check_explained(body: dict[str, Any]) -> None:
    for u in body["units"]:
        assert u["eta_s"] == pytest.approx(
            u["distance_m"] / {"police": 2.0, "auxiliary": 1.4, "vehicle": 8.0}[u["kind"]], abs=0.05
        )
        assert "(estimate)" in u["eta_basis"] and u["fix_age_s"] >= 0
        assert f"{u['status'].replace('_', ' ')} {u['kind']} unit" in u["reason"]


async def test_the_answer_reads_like_a_recommendation(pg_api: LiveApi) -> None:
    api = pg_api
    registry.insert_units_bulk(
        api.engine,
        [
            {"id": "near", "name": "n", "kind": "police", "status": "available", "skills": ["first_aid"]},
            {"id": "busy", "name": "b", "kind": "police", "status": "busy"},
            {"id": "stale", "name": "s", "kind": "police", "status": "available"},
            {"id": "far", "name": "f", "kind": "vehicle", "status": "available"},
        ],
    )
    await api.fleet.rebuild(api.engine, lookback_s=3600)
    api.fleet.apply(
        [
            fix("d1", "near", 4.3560, 50.85, START_S - 8, accuracy_m=6),
            fix("d2", "busy", 4.3501, 50.85, START_S - 1),
            fix("d3", "stale", 4.3502, 50.85, START_S - 900),
            fix("d4", "far", 4.4000, 50.85, START_S - 2),
        ]
    )
    body = await api.json("GET", "/v1/units/nearest?lon=4.35&lat=50.85&k=2", role="viewer")
    assert [u["id"] for u in body["units"]] == ["near", "far"]
    first = body["units"][0]
    assert first["reason"] == "nearest available police unit, 421 m, fix 8 s old, ±6 m"
    assert first["eta_basis"] == "straight line at 2 m/s for police (estimate)"
    assert body["units"][1]["reason"].startswith("2nd nearest available vehicle unit, 3.5 km")
    assert body["excluded"] == {"status:busy": 1, "stale": 1}
    assert body["query"]["status"] == ["available"] and body["query"]["max_age_s"] == 300.0


BAD = [
    ("lat=50", "lon"),
    ("lon=200&lat=50", "lon"),
    ("lon=x&lat=50", "lon"),
    ("lon=4&lat=nan", "lat"),
    ("lon=4&lat=50&k=0", "k"),
    ("lon=4&lat=50&k=1001", "k"),
    ("lon=4&lat=50&k=101", "k"),
    ("lon=4&lat=50&status=sleeping", "status"),
    ("lon=4&lat=50&kind=tank", "kind"),
    ("lon=4&lat=50&radius_m=-5", "radius_m"),
    ("lon=4&lat=50&max_age_s=-1", "max_age_s"),
    ("lon=4&lat=50&skill=a,,b", "skill"),
]


async def test_bad_parameters_are_named_and_explained(sqlite_api: LiveApi) -> None:
    for query, parameter in BAD:
        problem = await sqlite_api.json("GET", f"/v1/units/nearest?{query}", role="viewer", status=400)
        assert problem["invalid_params"][0]["name"] == parameter, query
        assert (
            problem["detail"].startswith(f"{parameter}: ") and len(problem["invalid_params"][0]["reason"]) > 5
        )
