"""Takes the README's screenshot of the demo: `outpost demo` in a scratch folder, the live map in headless
Chromium, signed in with the banner's token, after the fleet has driven a while.

    .venv/bin/python docs/img/shoot_demo.py [--wait 90] [--out docs/img/demo-map.png]

The scratch folder first gets the shipped San Francisco police districts and neighbourhoods as grids
(`outpost grids import`, as a station would load its own), so the map shows the fleet on its roads and
grids. The demo takes free ports when the defaults are taken; the script reads the map's URL and the token
from its banner.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.support.browser import chromium_driver, wait_until  # noqa: E402

CLI = [sys.executable, "-m", "outpost.cli"]
GRIDS = (
    ("sf_police_districts.geojson", "police", "district"),
    ("sf_analysis_neighborhoods.geojson", "community", "neighborhood"),
)


def banner(log: Path) -> tuple[str, str] | None:
    """The map's URL and the token, once the demo has printed them."""
    text = log.read_text(encoding="utf-8", errors="replace")
    url = re.search(r"live map\s+(http://\S+/map)", text)
    token = re.search(r"your token\s+(\S+)", text)
    return (url.group(1), token.group(1)) if url and token else None


def shoot(workdir: Path, wait_s: float, out: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")} | {"PYTHONPATH": str(REPO)}
    for name, level, prop in GRIDS:
        grid_file = REPO / "sim" / "data" / name
        subprocess.run(
            [*CLI, "grids", "import", str(grid_file), "--level", level, "--name-property", prop],
            cwd=workdir,
            env=env,
            check=True,
            capture_output=True,
        )
    log = workdir / "demo.log"
    with log.open("wb") as sink:
        demo = subprocess.Popen([*CLI, "demo"], cwd=workdir, env=env, stdout=sink, stderr=subprocess.STDOUT)
    driver = None
    try:
        url, token = wait_until(lambda: banner(log), 90, "the demo's banner")
        time.sleep(wait_s)  # the fleet drives, calls come in and are handled
        driver = chromium_driver(workdir)
        driver.set_window_size(1600, 1000)
        driver.get(url)
        driver.execute_script("sessionStorage.setItem('outpost.token', arguments[0]);", token)
        driver.refresh()
        wait_until(
            lambda: driver.execute_script("return !!(window.outpost && window.outpost.ready)"), 60, "map"
        )
        wait_until(lambda: driver.execute_script("return window.outpost.grids.loaded"), 30, "grids")
        driver.find_element("id", "layer-grids-community").click()
        time.sleep(3)
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
        print(f"wrote {out}")
    finally:
        if driver is not None:
            driver.quit()
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(timeout=30)
        except subprocess.TimeoutExpired:
            demo.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--wait", type=float, default=90.0, help="seconds the demo runs before the shot")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "demo-map.png")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="outpost-shot-") as tmp:
        shoot(Path(tmp), args.wait, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
