"""Captured decoder fixtures (see README.md for their sources) and the invariants every candidate keeps."""

from __future__ import annotations

import math
import urllib.parse
from datetime import UTC
from pathlib import Path

from ingest.decode import Candidate

HERE = Path(__file__).parent


def read(name: str) -> bytes:
    """The bytes of one fixture, e.g. read("owntracks/lwt.json")."""
    return (HERE / name).read_bytes()


def names(folder: str, suffix: str = ".json") -> list[str]:
    """Every fixture in a folder, as names for `read`."""
    return sorted(f"{folder}/{p.name}" for p in (HERE / folder).iterdir() if p.name.endswith(suffix))


def osmand_queries() -> list[dict[str, str]]:
    """Each line of osmand_queries.txt as the Mapping an HTTP server hands over (first value wins)."""
    out = []
    for line in read("traccar/osmand_queries.txt").decode().splitlines():
        query = urllib.parse.urlsplit(line).query
        params: dict[str, str] = {}
        for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
            params.setdefault(key, value)
        out.append(params)
    return out


def check_invariants(c: Candidate) -> None:
    """What every decoded candidate of a real payload must satisfy."""
    assert c.ts.tzinfo is UTC, c
    assert 0 < len(c.device_id) <= 128 and c.device_id.isprintable(), c
    assert math.isfinite(c.lon) and -180 <= c.lon <= 180, c
    assert math.isfinite(c.lat) and -90 <= c.lat <= 90, c
    for value in (c.accuracy_m, c.speed_mps, c.heading_deg, c.altitude_m, c.battery_pct):
        assert value is None or math.isfinite(value), c
    assert c.accuracy_m is None or c.accuracy_m >= 0, c
    assert c.speed_mps is None or 0 <= c.speed_mps < 350, c  # m/s: nothing a device carries goes faster
    assert c.heading_deg is None or 0 <= c.heading_deg < 360, c
    assert c.battery_pct is None or 0 <= c.battery_pct <= 100, c
    assert c.altitude_m is None or -1000 < c.altitude_m < 20000, c
    assert 1990 <= c.ts.year <= 2100, c
