"""Decode (and validate) cost per fix, against bare JSON parsing measured in the same run.

    .venv/bin/python benchmarks/bench_decode.py [--n 200000]

Prints ns per fix (best of 5 repeats) for json.loads and msgspec.json.decode of the same payload (the
baselines), then decode_mqtt for our own format (one fix, and a 50-fix offline buffer), OwnTracks and
Traccar Client JSON, and Validator.check; each with its ratio to the bare msgspec decode.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec

from ingest.decode import decode_mqtt, decode_traccar_http
from ingest.settings import IngestSettings
from ingest.validate import DeviceInfo, Validator

OWN = (
    b'{"ts":1741940813589,"lat":52.370216,"lon":4.895168,"acc_m":4.8,"speed_mps":1.4,'
    b'"heading_deg":87,"seq":1042}'
)
OWN_TOPIC = "outpost/v1/devices/bodycam-0042/fix"
BUFFER = b"[" + b",".join([OWN] * 50) + b"]"
OT_TOPIC = "owntracks/jane/phone"
JSON = "application/json"
OWNTRACKS = (
    b'{"_type":"location","acc":20,"al":0,"batt":100,"bs":0,"conn":"w","created_at":1610748273,'
    b'"lat":51.2,"lon":-4,"tid":"aa","tst":1610799026,"vac":40,"vel":7}'
)
TRACCAR = (
    b'{"location":{"event":"motionchange","is_moving":false,"uuid":"0e9a2473-a9a7-4c00-997b-fb97d2154e75",'
    b'"timestamp":"2021-07-21T08:06:34.444Z","odometer":0,"coords":{"latitude":-6.1148096,"longitude":106.6837015,'
    b'"accuracy":3.8,"speed":18.67,"heading":63,"altitude":35.7},"battery":{"is_charging":false,"level":0.79},'
    b'"extras":{}},"device_id":"8737767034"}'
)


def ns_per_call(fn: Callable[[], object], n: int) -> float:
    """Best of 5 repeats of n calls, in ns per call."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter_ns()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter_ns() - start) / n)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="calls per repeat")
    n = parser.parse_args().n
    assert len(decode_mqtt(OWN_TOPIC, OWN).candidates) == 1
    assert len(decode_mqtt(OWN_TOPIC, BUFFER).candidates) == 50

    (candidate,) = decode_mqtt(OWN_TOPIC, OWN).candidates
    device = DeviceInfo(device_id="bodycam-0042", enabled=True, unit_id="unit-7", has_credentials=True)
    validator = Validator(IngestSettings(), clock=lambda: candidate.ts.timestamp() + 1.0)
    received_at = datetime.now(UTC)
    raw = msgspec.json.Decoder()

    def decode_and_validate() -> None:
        for c in decode_mqtt(OWN_TOPIC, OWN).candidates:
            validator.check(c, device, received_at)

    baseline = ns_per_call(lambda: raw.decode(OWN), n)
    rows = [
        ("json.loads (own fix)", ns_per_call(lambda: json.loads(OWN), n), 1),
        ("msgspec.json.decode (own fix), untyped", baseline, 1),
        ("decode_mqtt own format, 1 fix", ns_per_call(lambda: decode_mqtt(OWN_TOPIC, OWN), n), 1),
        (
            "decode_mqtt own format, 50-fix buffer",
            ns_per_call(lambda: decode_mqtt(OWN_TOPIC, BUFFER), n // 50),
            50,
        ),
        ("decode_mqtt OwnTracks location", ns_per_call(lambda: decode_mqtt(OT_TOPIC, OWNTRACKS), n), 1),
        (
            "decode_traccar_http Client 9 JSON",
            ns_per_call(lambda: decode_traccar_http({}, TRACCAR, JSON), n),
            1,
        ),
        (
            "Validator.check (accepted fix)",
            ns_per_call(lambda: validator.check(candidate, device, received_at), n),
            1,
        ),
        ("decode_mqtt + Validator.check, 1 fix", ns_per_call(decode_and_validate, n), 1),
    ]
    print(f"{'stage':44} {'ns/fix':>8} {'x msgspec':>10}")
    for name, ns, fixes in rows:
        per_fix = ns / fixes
        print(f"{name:44} {per_fix:8.0f} {per_fix / baseline:10.2f}")


if __name__ == "__main__":
    main()
