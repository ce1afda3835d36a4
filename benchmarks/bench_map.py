"""The live map under 1,000 units at 1 Hz: a fix published over MQTT → its marker moved; frame time.

    .venv/bin/python benchmarks/bench_map.py [--units 1000] [--rate 1] [--warmup 15] [--duration 30]

Starts its own PostgreSQL (PostGIS) and Mosquitto (tests.support.services), a real `outpost run` on them
(tests.support.browser.running_outpost) and a headless Chromium (Debian's chromium and chromium-driver) on
the live map, signed in as a viewer. A publisher (paho, QoS 1, one client for the fleet) sends every unit's
fix `--rate` times a second, spread over the second, each a few metres on from the last, stamped with the
time it is published. After `--warmup` seconds (the devices are registered on first contact and the page
loads its snapshot), for `--duration` seconds the page records, by scripts injected through the driver:

- received: publish → the `unit.moved` event read from the page's stream (the transport: broker, ingest,
  live picture, event bus, HTTP);
- moved: publish → the unit's marker moved in the DOM (its position set by the page's once-a-frame draw);
- frame: the time between animation frames while the fleet moves.

Baseline, measured in the same run and the same browser: a bare Leaflet page (the same vendored Leaflet, no
Outpost code) with the same number of divIcon markers, each moved by `setLatLng` as soon as its update comes
from a local timer at the same rate: its frame time, and its update → moved time. Prints p50/p99/max of every
figure, the ratios (page frame / bare frame; moved / received: what drawing adds to the transport) and a
last JSON line. OUTPOST_BENCH_QUICK=1: 300 units, 10 s warm-up, 15 s measured.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.browser import chromium_driver, running_outpost, wait_until  # noqa: E402
from tests.support.services import Mosquitto, PgCluster  # noqa: E402

LON, LAT = -122.4194, 37.7793
STEP_DEG = 0.0001  # ~11 m a fix: more than a pixel at zoom 14, so every fix moves its marker

# Injected into the signed-in page: wraps the stream's event callback (received), watches the marker pane
# for position changes (moved) and counts animation frames.
_MEASURE_PAGE = """
const m = window.__bench = {received: [], moved: [], frames: [], on: false};
const stream = window.outpost.stream, handle = stream.onEvent;
stream.onEvent = (event, id) => {
  if (m.on && event.type === "unit.moved") m.received.push(Date.now() - Date.parse(event.ts));
  handle(event, id);
};
new MutationObserver((records) => {
  if (!m.on) return;
  const now = Date.now();
  for (const r of records) {
    const node = r.target.querySelector && r.target.querySelector(".unit");
    const unit = node && window.outpost.units.get(node.dataset.unit);
    if (!unit || !unit.tsMs || r.target.__ts === unit.tsMs) continue;
    r.target.__ts = unit.tsMs;
    m.moved.push(now - unit.tsMs);
  }
}).observe(document.querySelector(".leaflet-marker-pane"),
  {attributes: true, attributeFilter: ["style"], subtree: true});
let last = performance.now();
requestAnimationFrame(function frame(t) {
  if (m.on) m.frames.push(t - last);
  last = t;
  requestAnimationFrame(frame);
});
"""

# The baseline: a bare Leaflet map on a blank body, `arguments[0]` markers moved at `arguments[1]` Hz.
_BARE_PAGE = """
const [count, rateHz] = arguments;
document.body.replaceChildren();
const div = document.createElement("div");
div.style.height = "100vh";
document.body.append(div);
const map = L.map(div).setView([37.7793, -122.4194], 14);
const m = window.__bench = {moved: [], frames: [], on: false};
const markers = [];
for (let i = 0; i < count; i++) {
  const lat = 37.7793 + (Math.floor(i / 32) - 16) * 0.0006, lon = -122.4194 + ((i % 32) - 16) * 0.0008;
  const icon = L.divIcon({html: '<div class="unit"><span class="body">P</span></div>', iconSize: [22, 22]});
  markers.push({marker: L.marker([lat, lon], {icon}).addTo(map), lat, lon});
}
let next = 0;
const t0 = Date.now(), perTickMs = 10;
setInterval(() => {
  // as many updates as are due by now (a late timer catches up: the same rate as the fleet's)
  const due = Math.floor(((Date.now() - t0) * count * rateHz) / 1000);
  while (next < due) {
    const item = markers[next++ % count];
    const sent = Date.now();
    item.lat += next % (50 * count) < 25 * count ? 0.0001 : -0.0001;
    item.marker.setLatLng([item.lat, item.lon]);
    if (m.on) m.moved.push(Date.now() - sent);
  }
}, perTickMs);
let last = performance.now();
requestAnimationFrame(function frame(t) {
  if (m.on) m.frames.push(t - last);
  last = t;
  requestAnimationFrame(frame);
});
"""


class Fleet:
    """`units` devices publishing a fix each `1 / rate_hz` s over MQTT, spread over the period."""

    def __init__(self, port: int, units: int, rate_hz: float) -> None:
        self.units, self.period_s = units, 1.0 / rate_hz
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-map-fleet")
        self.client.max_inflight_messages_set(units)
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _place(self, n: int, step: int) -> tuple[float, float]:
        col, row = n % 32, n // 32
        phase = step % 100  # back and forth along 50 steps: never a jump the speed rule would refuse
        return LON + (col - 16) * 0.0008, LAT + (row - 16) * 0.0006 + min(phase, 100 - phase) * STEP_DEG

    def _run(self) -> None:
        step = 0
        start = time.monotonic()
        while not self.stop.is_set():
            for n in range(self.units):
                due = start + (step + n / self.units) * self.period_s
                if (wait := due - time.monotonic()) > 0:
                    time.sleep(wait)
                lon, lat = self._place(n, step)
                fix = {"ts": int(time.time() * 1000), "lon": lon, "lat": lat, "acc_m": 5, "seq": step + 1}
                self.client.publish(f"outpost/v1/devices/map-{n:04d}/fix", json.dumps(fix), qos=1)
                self.sent += 1
            step += 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.client.loop_stop()
        self.client.disconnect()


def figures(values: list[float]) -> dict[str, float]:
    """p50, p99 and max (ms) and how many."""
    if not values:
        return {"n": 0, "p50_ms": math.nan, "p99_ms": math.nan, "max_ms": math.nan}
    arr = np.asarray(values, dtype=float)
    return {
        "n": len(values),
        "p50_ms": round(float(np.percentile(arr, 50)), 1),
        "p99_ms": round(float(np.percentile(arr, 99)), 1),
        "max_ms": round(float(arr.max()), 1),
    }


def measure(driver: Any, seconds: float) -> dict[str, list[float]]:
    """Switches the injected recorder on for `seconds` and reads what it recorded."""
    driver.execute_script("window.__bench.on = true;")
    time.sleep(seconds)
    found = driver.execute_script("window.__bench.on = false; return window.__bench;")
    return {k: v for k, v in found.items() if isinstance(v, list)}


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    pg, broker = PgCluster().start(), Mosquitto().start()
    try:
        pg.psql("CREATE DATABASE outpost")
        with running_outpost(pg.url("outpost"), broker, workdir) as outpost:
            driver = chromium_driver(workdir)
            fleet = Fleet(broker.port, args.units, args.rate)
            try:
                time.sleep(args.warmup)
                driver.get(outpost.url + "/map")
                driver.execute_script(
                    "sessionStorage.setItem('outpost.token', arguments[0]);", outpost.tokens["viewer"]
                )
                driver.refresh()
                wait_until(
                    lambda: driver.execute_script("return !!(window.outpost && window.outpost.ready)"),
                    60,
                    "page",
                )
                wait_until(
                    lambda: driver.execute_script("return window.outpost.units.size") >= args.units,
                    60,
                    "units",
                )
                driver.execute_script(_MEASURE_PAGE)
                page = measure(driver, args.duration)
                markers = driver.execute_script("return document.querySelectorAll('.unit[data-unit]').length")
                sent = fleet.sent
            finally:
                fleet.close()
            try:
                driver.execute_script("sessionStorage.clear();")
                driver.get(outpost.url + "/map")
                driver.execute_script(_BARE_PAGE, args.units, args.rate)
                time.sleep(2)
                bare = measure(driver, args.duration)
            finally:
                driver.quit()
    finally:
        broker.close()
        pg.close()
    return {"page": page, "bare": bare, "markers": markers, "sent": sent}


def summarise(args: argparse.Namespace, found: dict[str, Any]) -> dict[str, Any]:
    page, bare = found["page"], found["bare"]
    out = {
        "units": args.units,
        "rate_hz": args.rate,
        "duration_s": args.duration,
        "markers": found["markers"],
        "fixes_published": found["sent"],
        "received": figures(page["received"]),
        "moved": figures(page["moved"]),
        "frame": figures(page["frames"]),
        "bare_moved": figures(bare["moved"]),
        "bare_frame": figures(bare["frames"]),
    }
    out["ratio_frame_p50"] = round(out["frame"]["p50_ms"] / out["bare_frame"]["p50_ms"], 2)
    out["ratio_frame_p99"] = round(out["frame"]["p99_ms"] / out["bare_frame"]["p99_ms"], 2)
    out["ratio_moved_to_received_p50"] = round(out["moved"]["p50_ms"] / out["received"]["p50_ms"], 2)
    return out


def report(s: dict[str, Any]) -> None:
    print(
        f"live map: {s['units']} units at {s['rate_hz']} Hz for {s['duration_s']} s, {s['markers']} markers"
    )
    for key, label in (
        ("received", "publish → event on the page"),
        ("moved", "publish → marker moved"),
        ("frame", "frame time, live map"),
        ("bare_moved", "update → moved, bare Leaflet"),
        ("bare_frame", "frame time, bare Leaflet"),
    ):
        f = s[key]
        spread = f"p50 {f['p50_ms']:8.1f} ms  p99 {f['p99_ms']:8.1f} ms  max {f['max_ms']:8.1f} ms"
        print(f"  {label:32} {spread}  n={f['n']}")
    print(
        f"  ratios: frame p50 {s['ratio_frame_p50']}x, p99 {s['ratio_frame_p99']}x the bare page's; "
        f"moved/received p50 {s['ratio_moved_to_received_p50']}x"
    )
    print(json.dumps(s))


def main() -> int:
    quick = os.environ.get("OUTPOST_BENCH_QUICK") == "1"
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--units", type=int, default=300 if quick else 1000)
    parser.add_argument("--rate", type=float, default=1.0)
    parser.add_argument("--warmup", type=float, default=10 if quick else 15)
    parser.add_argument("--duration", type=float, default=15 if quick else 30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-map-") as tmp:
        report(summarise(args, run(args, Path(tmp))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
