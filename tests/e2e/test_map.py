"""The live map in a real headless Chromium against a real `outpost run` with the real broker and
PostgreSQL: it loads without console errors, units appear and move as devices publish over MQTT, an
incident reported on the page exists in the API with its recommendations shown, an offer made on the page
reaches the device's topic, a cut stream loses nothing, a viewer gets no dispatcher actions, and the wall
mode counts. Each test saves a screenshot under test-artifacts/."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import (
    ARTIFACTS,
    CuttableProxy,
    Outpost,
    chromium_driver,
    listen,
    publish,
    running_outpost,
    wait_until,
)
from tests.support.services import Mosquitto

pytestmark = pytest.mark.slow

LON, LAT = -122.4194, 37.7793


@pytest.fixture
def outpost(pg_url: str, mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Outpost]:
    with running_outpost(pg_url, mosquitto, tmp_path) as running:
        yield running


@pytest.fixture
def proxy(outpost: Outpost) -> Iterator[CuttableProxy]:
    port = int(outpost.url.rsplit(":", 1)[1])
    cut = CuttableProxy(port)
    yield cut
    cut.close()


@pytest.fixture
def browser(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    driver = chromium_driver(tmp_path)
    try:
        yield driver
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / f"{request.node.name}.png"))
        driver.quit()


def fix(mosquitto: Mosquitto, device: str, lon: float, lat: float, seq: int, ago_s: float = 0.0) -> None:
    """A device's fix `ago_s` before now (a unit's first fix a minute back: its next may be far without
    breaking the speed rule)."""
    payload = {"ts": int((time.time() - ago_s) * 1000), "lat": lat, "lon": lon, "acc_m": 5, "seq": seq}
    publish(mosquitto, f"outpost/v1/devices/{device}/fix", payload)


def sign_in(driver: Any, base: str, token: str, query: str = "") -> None:
    from selenium.webdriver.common.by import By

    driver.get(base + "/" if not query else f"{base}/map{query}")
    field = wait_until(lambda: _visible(driver, "token"), 20, "sign-in form")
    field.send_keys(token)
    driver.find_element(By.ID, "signin-button").click()
    wait_until(
        lambda: driver.execute_script("return !!(window.outpost && window.outpost.ready)"), 30, "snapshot"
    )


def _visible(driver: Any, element_id: str) -> Any:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.ID, element_id)
    return found[0] if found and found[0].is_displayed() else None


def page_unit(driver: Any, unit_id: str) -> dict[str, Any] | None:
    found = driver.execute_script(
        "const u = window.outpost.units.get(arguments[0]); return u ? JSON.stringify(u) : null;", unit_id
    )
    return json.loads(found) if found else None


def console_errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def available_unit(outpost: Outpost, mosquitto: Mosquitto, device: str, lon: float, lat: float) -> None:
    fix(mosquitto, device, lon, lat, 1, ago_s=60)
    wait_until(lambda: _has_position(outpost, device), 30, f"{device} stored")
    outpost.api("POST", f"/v1/units/{device}/status", {"status": "available"}, role="dispatcher")


def _has_position(outpost: Outpost, unit_id: str) -> bool:
    from tests.support.browser import call

    status, found = call("GET", f"{outpost.url}/v1/units/{unit_id}", outpost.tokens["admin"])
    return status == 200 and found["position"] is not None


def test_the_page_loads_clean_and_units_appear_and_move(
    outpost: Outpost, mosquitto: Mosquitto, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    for n, device in enumerate(("cam-1", "cam-2", "cam-3")):
        available_unit(outpost, mosquitto, device, LON + n * 0.002, LAT)
    sign_in(browser, outpost.url, outpost.tokens["viewer"])
    assert browser.current_url.endswith("/map")  # `/` redirected
    wait_until(lambda: len(browser.find_elements(By.CSS_SELECTOR, ".unit[data-unit]")) == 3, 20, "3 markers")
    fix(mosquitto, "cam-2", LON + 0.002 + 0.002, LAT + 0.0016, 2)  # cam-2 drives north-east
    moved = wait_until(lambda: (page_unit(browser, "cam-2") or {}).get("lat", 0) > LAT + 0.001, 20, "move")
    assert moved
    unit = page_unit(browser, "cam-2")
    assert unit is not None and unit["status"] == "available" and unit["heading"] == pytest.approx(45, abs=5)
    marker = browser.find_element(By.CSS_SELECTOR, '.unit[data-unit="cam-2"]')
    assert "status-available" in marker.get_attribute("class") and marker.text.startswith("?") is False
    assert console_errors(browser) == []


def test_a_dispatcher_reports_an_incident_on_the_map_and_offers_it_to_a_device(
    outpost: Outpost, mosquitto: Mosquitto, browser: Any
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    available_unit(outpost, mosquitto, "cam-7", LON, LAT)
    sign_in(browser, outpost.url, outpost.tokens["dispatcher"])
    # A click 40 px from the map's centre (cam-7's marker is at the centre), a few hundred metres away.
    ActionChains(browser).move_to_element_with_offset(
        browser.find_element(By.ID, "map"), 40, 40
    ).click().perform()
    wait_until(lambda: _visible(browser, "new-incident"), 10, "report form")
    Select(browser.find_element(By.ID, "new-priority")).select_by_visible_text("P3")
    browser.find_element(By.ID, "new-category").clear()
    browser.find_element(By.ID, "new-category").send_keys("burglary")
    browser.find_element(By.ID, "new-submit").click()

    row = wait_until(
        lambda: browser.find_elements(By.CSS_SELECTOR, '#recommendations tr[data-candidate="cam-7"]'),
        20,
        "recs",
    )[0]
    assert "km" in row.text or " m" in row.text  # the distance, then ETA and the reason
    assert "null" not in browser.find_element(By.ID, "incident").text
    incidents = outpost.api("GET", "/v1/incidents")["incidents"]
    assert [(i["category"], i["priority"], i["source"]) for i in incidents] == [
        ("burglary", "P3", "dispatcher")
    ]
    incident_id = incidents[0]["id"]

    device = listen(mosquitto, "outpost/v1/devices/cam-7/offers")
    row.find_element(By.CSS_SELECTOR, "button.offer").click()
    pushed, _ = device.communicate(timeout=45)
    offer = json.loads(pushed)
    assert offer["type"] == "offer" and offer["incident_id"] == incident_id
    wait_until(
        lambda: browser.find_elements(By.CSS_SELECTOR, '#offers tr[data-state="pending"]'), 20, "pending"
    )
    publish(mosquitto, "outpost/v1/devices/cam-7/reply", {"offer_id": offer["offer_id"], "answer": "accept"})
    wait_until(
        lambda: browser.find_elements(By.CSS_SELECTOR, '#offers tr[data-state="accepted"]'), 20, "accepted"
    )
    assert console_errors(browser) == []


def test_a_cut_stream_loses_no_event(
    outpost: Outpost, mosquitto: Mosquitto, proxy: CuttableProxy, browser: Any
) -> None:
    units = [f"cam-{n}" for n in range(10, 16)]
    for n, device in enumerate(units):
        available_unit(outpost, mosquitto, device, LON + n * 0.001, LAT)
    sign_in(browser, proxy.url, outpost.tokens["viewer"])
    wait_until(lambda: browser.execute_script("return window.outpost.stream.connections") == 1, 20, "stream")
    proxy.cut()
    wait_until(
        lambda: browser.execute_script("return document.getElementById('conn').textContent") != "live",
        20,
        "cut",
    )
    for device in units:  # missed while the page is cut off
        outpost.api("POST", f"/v1/units/{device}/status", {"status": "busy"}, role="dispatcher")
    fix(mosquitto, units[0], LON + 0.001, LAT + 0.001, 9)
    time.sleep(1.0)
    proxy.restore()
    wait_until(
        lambda: all((page_unit(browser, d) or {}).get("status") == "busy" for d in units),
        30,
        "missed statuses",
    )
    wait_until(lambda: (page_unit(browser, units[0]) or {}).get("lat", 0) > LAT + 0.0005, 20, "missed move")
    seen = browser.execute_script("return window.outpost")
    assert seen["resyncs"] == 0 and seen["snapshots"] == 1  # replayed from the buffer, not reloaded
    assert browser.execute_script("return window.outpost.stream.connections") >= 2
    ids = browser.execute_script("return window.outpost.eventIds")
    assert ids == sorted(set(ids)) and len(ids) >= len(units) + 1


def test_a_viewer_gets_no_dispatcher_actions(outpost: Outpost, mosquitto: Mosquitto, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    available_unit(outpost, mosquitto, "cam-5", LON, LAT)
    created = outpost.api(
        "POST",
        "/v1/incidents",
        {"lon": LON, "lat": LAT, "category": "theft", "priority": "P4", "source": "call"},
        role="dispatcher",
    )
    sign_in(browser, outpost.url, outpost.tokens["viewer"])
    assert not browser.find_element(By.ID, "actions").is_displayed()
    browser.find_element(By.ID, "map").click()
    time.sleep(0.5)
    assert not browser.find_element(By.ID, "new-incident").is_displayed()
    marker = wait_until(
        lambda: browser.find_elements(By.CSS_SELECTOR, f'[data-incident="{created["id"]}"]'), 20, "incident"
    )[0]
    marker.click()
    wait_until(
        lambda: browser.find_elements(By.CSS_SELECTOR, "#recommendations tr[data-candidate]"), 20, "recs"
    )
    assert browser.find_elements(By.CSS_SELECTOR, "button.offer") == []
    assert console_errors(browser) == []


def test_wall_mode_has_no_controls_and_counts(outpost: Outpost, mosquitto: Mosquitto, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    available_unit(outpost, mosquitto, "cam-8", LON, LAT)
    outpost.api(
        "POST",
        "/v1/incidents",
        {"lon": LON, "lat": LAT, "category": "assault", "priority": "P2", "source": "call"},
        role="dispatcher",
    )
    sign_in(browser, outpost.url, outpost.tokens["dispatcher"], query="?wall=1")
    wait_until(lambda: _visible(browser, "count-open-P2"), 20, "counters")
    assert browser.find_element(By.ID, "count-open-P2").text.startswith("1")
    assert browser.find_element(By.ID, "count-available").text.startswith("1")
    assert not browser.find_element(By.ID, "panel").is_displayed()
    assert (
        browser.find_elements(By.CSS_SELECTOR, ".leaflet-control-zoom") == []
        or not browser.find_element(By.CSS_SELECTOR, ".leaflet-control-zoom").is_displayed()
    )
    assert console_errors(browser) == []
