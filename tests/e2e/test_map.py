"""The live map in a real headless Chromium against a real `outpost run` with the real broker and
PostgreSQL: it loads without console errors, units appear and move as devices publish over MQTT, an
incident reported on the page exists in the API with its recommendations shown, an offer made on the page
reaches the device's topic and one left unanswered times out on the page, a cut stream loses nothing, a viewer
gets no dispatcher actions, and the wall mode counts. The layers and tools: both levels of grids with their
holder, coverage gaps and out-of-grid alerts (acknowledged on the page), the heat maps with a time window and
a category, a unit's track with its time slider, fleet playback, and a roll call started and answered. Each
test saves a screenshot under test-artifacts/."""

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
def outpost(
    request: pytest.FixtureRequest, pg_url: str, mosquitto: Mosquitto, tmp_path: Path
) -> Iterator[Outpost]:
    """`outpost run`; a test parametrizes it indirectly with more settings (e.g. a short offer timeout)."""
    settings: dict[str, str] = getattr(request, "param", {})
    with running_outpost(pg_url, mosquitto, tmp_path, **settings) as running:
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
    from tests.support.http import call

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
    seen = browser.execute_script(
        "return {resyncs: window.outpost.resyncs, snapshots: window.outpost.snapshots}"
    )
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
    assert not browser.find_element(By.ID, "rollcall").is_displayed()
    assert browser.find_elements(By.CSS_SELECTOR, "button.ack") == []
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
    assert browser.find_element(By.ID, "count-gaps").text.startswith("0")  # no grid held, none uncovered
    assert not browser.find_element(By.ID, "panel").is_displayed()
    assert (
        browser.find_elements(By.CSS_SELECTOR, ".leaflet-control-zoom") == []
        or not browser.find_element(By.CSS_SELECTOR, ".leaflet-control-zoom").is_displayed()
    )
    assert console_errors(browser) == []


def square(lon: float, lat: float, half: float = 0.003) -> dict[str, Any]:
    """A square polygon (GeoJSON, lon/lat) around a point."""
    ring = [
        [lon - half, lat - half],
        [lon + half, lat - half],
        [lon + half, lat + half],
        [lon - half, lat + half],
    ]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def held_grid(
    outpost: Outpost, mosquitto: Mosquitto, unit: str, grid: str, unit_at: tuple[float, float]
) -> None:
    """Police grid `grid` (with a community grid inside it) around (LON, LAT), held by `unit` standing at
    `unit_at`."""
    outpost.api(
        "POST",
        "/v1/grids",
        {"id": grid, "level": "police", "name": grid.title(), "geometry": square(LON, LAT)},
    )
    community = {
        "id": f"community-{grid}",
        "level": "community",
        "name": f"{grid.title()} C",
        "parent_id": grid,
        "geometry": square(LON, LAT, 0.0015),
    }
    outpost.api("POST", "/v1/grids", community)
    available_unit(outpost, mosquitto, unit, *unit_at)
    hours = {"starts_at": int(time.time()) - 60, "ends_at": int(time.time()) + 3600}
    outpost.api("POST", "/v1/assignments", {"unit_id": unit, "grid_id": grid, **hours}, role="dispatcher")


def set_form(driver: Any, values: dict[str, str]) -> None:
    """Sets form fields by id (datetime-local and range inputs take no keystrokes portably)."""
    driver.execute_script(
        "for (const [id, v] of Object.entries(arguments[0])) {"
        " const e = document.getElementById(id); e.value = v;"
        " e.dispatchEvent(new Event('input', {bubbles: true})); }",
        values,
    )


def local_input(ts_s: float) -> str:
    """An instant as a `datetime-local` value in the browser's (this machine's) zone."""
    return time.strftime("%Y-%m-%dT%H:%M", time.localtime(ts_s))


def open_tool(driver: Any, tool: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f"#{tool} summary").click()


def served(outpost: Outpost, path: str) -> bool:
    """Whether the API has the route yet (another engineer's route may not have landed on this branch)."""
    from tests.support.http import call

    status, _ = call("GET", outpost.url + path, outpost.tokens["viewer"])
    return status != 404


GRID_SETTINGS = {
    "OUTPOST_OUT_OF_GRID_DWELL_S": "0",
    "OUTPOST_COVERAGE_GAP_S": "0",
    "OUTPOST_PATROL_CHECK_S": "1",
}


@pytest.mark.parametrize("outpost", [GRID_SETTINGS], indirect=True)
def test_grids_show_both_levels_the_holder_and_alerts_a_dispatcher_acknowledges(
    outpost: Outpost, mosquitto: Mosquitto, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    held_grid(outpost, mosquitto, "cam-30", "police-sq", (LON + 0.01, LAT))  # ~900 m outside its grid
    sign_in(browser, outpost.url, outpost.tokens["dispatcher"])
    browser.find_element(By.ID, "layer-grids-community").click()
    label = '.grid-label[data-grid="police-sq"]'
    wait_until(lambda: "OUT cam-30" in _text(browser, label), 30, "out-of-grid label")
    wait_until(lambda: "GAP" in _text(browser, label), 30, "coverage gap label")
    assert "Police-Sq: cam-30" in _text(browser, label)  # the grid and its officer, in words
    levels = browser.execute_script(
        "return [...window.outpost.grids.grids.values()].map(g => g.level).sort()"
    )
    assert levels == ["community", "police"]
    raised = '#alert-list li[data-state="raised"]'
    wait_until(lambda: len(browser.find_elements(By.CSS_SELECTOR, raised)) == 2, 30, "two raised alerts")
    out = '#alert-list li[data-alert="out_of_grid:cam-30"]'
    assert "RAISED" in _text(browser, out) and "out of grid" in _text(browser, out)
    browser.find_element(By.CSS_SELECTOR, f"{out} button.ack").click()
    acked = 'li[data-alert="out_of_grid:cam-30"][data-acknowledged="true"]'
    wait_until(lambda: _text(browser, acked), 10, "acknowledged")
    assert "acknowledged by" in _text(browser, acked) and "map-dispatcher" in _text(browser, acked)
    served = outpost.api("GET", "/v1/alerts")["alerts"]  # through the API: every console sees it
    assert [a["acknowledged_by"] is not None for a in served if a["type"] == "out_of_grid.raised"] == [True]

    fix(mosquitto, "cam-30", LON, LAT, 2)  # back inside: both alerts clear
    wait_until(
        lambda: len(browser.find_elements(By.CSS_SELECTOR, '#alert-list li[data-state="cleared"]')) == 2,
        30,
        "cleared alerts",
    )
    wait_until(lambda: "GAP" not in _text(browser, label) and "OUT" not in _text(browser, label), 30, "label")
    assert console_errors(browser) == []


def _text(driver: Any, selector: str) -> str:
    """The element's text read in one step in the page (it may be redrawn between a find and a read)."""
    script = "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';"
    return str(driver.execute_script(script, selector))


def test_the_incident_heat_map_follows_its_window_and_category(
    outpost: Outpost, mosquitto: Mosquitto, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    for n, category in enumerate(("burglary", "burglary", "burglary", "theft")):
        body = {"lon": LON + n * 0.004, "lat": LAT, "category": category, "priority": "P4", "source": "call"}
        outpost.api("POST", "/v1/incidents", body, role="dispatcher")
    sign_in(browser, outpost.url, outpost.tokens["viewer"])
    open_tool(browser, "heat")
    now = time.time()
    set_form(
        browser,
        {
            "heat-from": local_input(now - 3600),
            "heat-to": local_input(now + 120),
            "heat-category": "burglary",
        },
    )
    browser.find_element(By.ID, "layer-heat-incidents").click()
    last = "return window.outpost.tools.heat.incidents.last"
    wait_until(lambda: (browser.execute_script(last) or {}).get("total") == 3, 20, "3 burglaries")
    set_form(browser, {"heat-category": ""})
    browser.find_element(By.ID, "heat-apply").click()
    wait_until(lambda: (browser.execute_script(last) or {}).get("total") == 4, 20, "every category")
    set_form(browser, {"heat-from": local_input(now - 7200), "heat-to": local_input(now - 3600)})
    browser.find_element(By.ID, "heat-apply").click()
    wait_until(lambda: (browser.execute_script(last) or {}).get("total") == 0, 20, "an earlier window")
    assert "Incident heat map" in browser.find_element(By.ID, "message").text
    assert console_errors(browser) == []


def test_the_patrol_presence_layer_draws_unit_minutes(
    outpost: Outpost, mosquitto: Mosquitto, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    now = time.time()
    window = f"?res=8&from={int(now - 3600)}&to={int(now + 60)}"
    if not served(outpost, "/v1/heatmap/patrol" + window):
        pytest.skip(
            "GET /v1/heatmap/patrol answers 404: the history engineer's patrol presence has not landed"
        )
    available_unit(outpost, mosquitto, "cam-60", LON, LAT)
    for n in range(1, 5):  # on duty from here: a few seconds of presence, fix by fix
        time.sleep(1.0)
        fix(mosquitto, "cam-60", LON + n * 0.00005, LAT, n + 1)
    last = LON + 4 * 0.00005
    wait_until(
        lambda: outpost.api("GET", "/v1/units/cam-60")["position"]["lon"] == pytest.approx(last), 30, "stored"
    )
    sign_in(browser, outpost.url, outpost.tokens["viewer"])
    open_tool(browser, "heat")
    set_form(browser, {"heat-from": local_input(now - 3600), "heat-to": local_input(now + 120)})
    browser.find_element(By.ID, "layer-heat-patrol").click()
    found = wait_until(
        lambda: browser.execute_script("return window.outpost.tools.heat.patrol.last"), 20, "patrol"
    )
    assert "error" not in found and found["cells"] >= 1
    assert console_errors(browser) == []


def test_a_units_track_for_the_day_with_its_time_slider(
    outpost: Outpost, mosquitto: Mosquitto, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    # A zigzag (no fix on the line between its neighbours: simplification keeps all four).
    path = [(LON, LAT), (LON + 0.001, LAT + 0.001), (LON + 0.002, LAT), (LON + 0.003, LAT + 0.001)]
    for n, (lon, lat) in enumerate(path):
        fix(mosquitto, "cam-40", lon, lat, n + 1, ago_s=240 - n * 60)
    wait_until(lambda: _has_position(outpost, "cam-40"), 30, "cam-40 stored")
    sign_in(browser, outpost.url, outpost.tokens["viewer"])
    open_tool(browser, "track")
    browser.find_element(By.ID, "track-unit").send_keys("cam-40")
    browser.find_element(By.ID, "track-load").click()
    wait_until(
        lambda: browser.execute_script("return window.outpost.tools.track.points.length") == 4, 20, "track"
    )
    clock = browser.find_element(By.ID, "track-clock")
    assert "(4/4)" in clock.text
    set_form(browser, {"track-slider": "0"})
    wait_until(lambda: "(1/4)" in clock.text, 10, "slider at the first fix")
    first_ms = browser.execute_script("return Date.parse(document.getElementById('track-clock').dataset.ts)")
    assert abs(first_ms / 1000 - (time.time() - 240)) < 60
    drawn = browser.execute_script("return window.outpost.tools.track.line.getLatLngs().length")
    assert drawn == 1  # the line is drawn up to the slider's time
    assert console_errors(browser) == []


def test_fleet_playback_between_two_times(outpost: Outpost, mosquitto: Mosquitto, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    now = time.time()
    if not served(outpost, f"/v1/units/snapshot?at={int(now)}"):
        pytest.skip(
            "GET /v1/units/snapshot answers 404: the history engineer's fleet snapshot has not landed"
        )
    for n, device in enumerate(("cam-70", "cam-71")):
        # The first fix registers the unit; the second is where the last frame must show it.
        fix(mosquitto, device, LON + n * 0.002, LAT, 1, ago_s=240)
        wait_until(lambda d=device: _has_position(outpost, d), 30, f"{device} registered")
        fix(mosquitto, device, LON + n * 0.002, LAT + 0.002, 2, ago_s=60)
        moved = f"/v1/units/{device}"
        wait_until(
            lambda m=moved: outpost.api("GET", m)["position"]["lat"] > LAT + 0.001, 30, f"{device} moved"
        )
    sign_in(browser, outpost.url, outpost.tokens["viewer"])
    open_tool(browser, "playback")
    set_form(
        browser,
        {"playback-from": local_input(now - 300), "playback-to": local_input(now), "playback-step": "60"},
    )
    browser.find_element(By.ID, "playback-load").click()
    frames = wait_until(
        lambda: browser.execute_script("return window.outpost.tools.playback.frames.length"), 20, "frames"
    )
    assert frames >= 5
    set_form(browser, {"playback-slider": str(frames - 1)})
    clock = browser.find_element(By.ID, "playback-clock")
    wait_until(lambda: f"({frames}/{frames})" in clock.text, 10, "last frame")
    drawn = browser.execute_script(
        "const p = window.outpost.tools.playback; return [...p.units.values()]"
        ".filter(u => u.lon !== null && p.layer.group.hasLayer(p.layer.markers.get(u.id)))"
        ".map(u => [u.id, u.lat]);"
    )
    assert sorted(u for u, _ in drawn) == ["cam-70", "cam-71"]
    assert all(lat > LAT + 0.001 for _, lat in drawn)  # where they were at the end
    browser.find_element(By.ID, "playback-live").click()
    wait_until(
        lambda: browser.execute_script("return window.outpost.tools.playback.frames.length") == 0, 10, "live"
    )
    assert console_errors(browser) == []


def test_a_roll_call_of_a_grid_started_on_the_page_shows_the_answers(
    outpost: Outpost, mosquitto: Mosquitto, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    held_grid(outpost, mosquitto, "cam-50", "police-rc", (LON, LAT))
    sign_in(browser, outpost.url, outpost.tokens["dispatcher"])
    wait_until(
        lambda: browser.find_elements(By.CSS_SELECTOR, '#rollcall-grid option[value="police-rc"]'),
        20,
        "grids",
    )
    Select(browser.find_element(By.ID, "rollcall-grid")).select_by_value("police-rc")
    chosen = Select(browser.find_element(By.ID, "rollcall-grid")).first_selected_option  # found again: the
    assert chosen.get_attribute("value") == "police-rc"  # list may be redrawn, the choice must stay
    set_form(browser, {"rollcall-deadline": "60"})
    device = listen(mosquitto, "outpost/v1/devices/cam-50/rollcall")
    browser.find_element(By.ID, "rollcall-start").click()
    pushed, _ = device.communicate(timeout=45)
    rollcall = json.loads(pushed)
    assert rollcall["type"] == "rollcall"
    row = '#rollcall-units tr[data-unit="cam-50"]'
    wait_until(lambda: _attr(browser, row, "data-result") == "pending", 20, "pending")
    answer = {
        "rollcall_id": rollcall["rollcall_id"],
        "fix": {"ts": int(time.time() * 1000), "lat": LAT, "lon": LON, "acc_m": 5},
    }
    publish(mosquitto, "outpost/v1/devices/cam-50/answer", answer)
    wait_until(lambda: _attr(browser, row, "data-result") == "present", 30, "present")
    assert "present" in browser.find_element(By.CSS_SELECTOR, row).text
    assert console_errors(browser) == []


def _attr(driver: Any, selector: str, name: str) -> str | None:
    """The attribute read in one step in the page (a found element may be redrawn before it is read)."""
    script = "const e = document.querySelector(arguments[0]); return e ? e.getAttribute(arguments[1]) : null;"
    found: str | None = driver.execute_script(script, selector, name)
    return found


@pytest.mark.parametrize("outpost", [{"OUTPOST_OFFER_TIMEOUT_S": "3"}], indirect=True)
def test_an_offer_made_on_the_page_times_out_visibly(
    outpost: Outpost, mosquitto: Mosquitto, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    available_unit(outpost, mosquitto, "cam-9", LON, LAT)
    created = outpost.api(
        "POST",
        "/v1/incidents",
        {"lon": LON + 0.002, "lat": LAT, "category": "noise", "priority": "P4", "source": "call"},
        role="dispatcher",
    )
    sign_in(browser, outpost.url, outpost.tokens["dispatcher"])
    wait_until(
        lambda: browser.find_elements(By.CSS_SELECTOR, f'[data-incident="{created["id"]}"]'), 20, "incident"
    )[0].click()
    offer = wait_until(
        lambda: browser.find_elements(
            By.CSS_SELECTOR, '#recommendations tr[data-candidate="cam-9"] button.offer'
        ),
        20,
        "offer button",
    )[0]
    offer.click()  # the device never answers
    row = wait_until(
        lambda: browser.find_elements(By.CSS_SELECTOR, '#offers tr[data-state="timed_out"]'), 30, "timed out"
    )[0]
    assert "timed out" in row.text and "cam-9" in row.text
    assert "timed out" in browser.find_element(By.ID, "message").text
    assert console_errors(browser) == []
