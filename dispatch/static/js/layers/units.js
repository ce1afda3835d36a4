// Units: one marker per unit, created once and moved after (1,000 units at 1 Hz stay cheap: no marker is
// rebuilt for a move). Shape and letter by kind, colour and a badge by status, an arrow for heading,
// faded and dashed when the fix is stale; the tooltip (name, status, device, age of fix, accuracy) is built
// when it opens.

import { age, el, metres } from "../dom.js";

const GLYPH = { police: "P", auxiliary: "A", vehicle: "V" };
const BADGE = {
  off_duty: "OFF", available: "AVL", offered: "OFR", assigned: "ASG", en_route: "ENR", on_scene: "ONS",
  busy: "BSY", out_of_service: "OOS", break: "BRK",
};

function bearingDeg(from, to) {
  const rad = Math.PI / 180;
  const y = Math.sin((to.lon - from.lon) * rad) * Math.cos(to.lat * rad);
  const x = Math.cos(from.lat * rad) * Math.sin(to.lat * rad) -
    Math.sin(from.lat * rad) * Math.cos(to.lat * rad) * Math.cos((to.lon - from.lon) * rad);
  return (Math.atan2(y, x) / rad + 360) % 360;
}

export class UnitsLayer {
  /** `clock`: the time staleness is judged at (now, or a playback frame's time), in ms. */
  constructor(map, staleAfterS, clock = () => Date.now()) {
    this.group = L.layerGroup().addTo(map);
    this.markers = new Map();
    this.staleAfterS = staleAfterS;
    this.clock = clock;
  }

  /** Moves a unit's position; the heading comes from the fix when given, else from the movement. */
  static moveTo(unit, lon, lat, tsMs) {
    if (unit.tsMs && tsMs < unit.tsMs) return false; // an older fix never moves a unit back
    if (unit.lon !== undefined) {
      const dLat = (lat - unit.lat) * 111320;
      const dLon = (lon - unit.lon) * 111320 * Math.cos((lat * Math.PI) / 180);
      if (Math.hypot(dLat, dLon) > 3) unit.heading = bearingDeg(unit, { lon, lat });
    }
    Object.assign(unit, { lon, lat, tsMs });
    return true;
  }

  icon(unit) {
    const arrow = el("span", { class: "arrow" });
    const node = el(
      "div",
      { class: "unit", "data-unit": unit.id },
      arrow,
      el("span", { class: "body" }, el("span", { class: "glyph" }, GLYPH[unit.kind] || "?")),
      el("span", { class: "badge" }),
    );
    return L.divIcon({ html: node, className: "unit-icon", iconSize: [22, 22], iconAnchor: [11, 11] });
  }

  tooltip(unit) {
    const fixAge = unit.tsMs ? (this.clock() - unit.tsMs) / 1000 : null;
    return el(
      "div",
      { class: "unit-tip" },
      el("strong", {}, unit.name || unit.id),
      el("div", {}, `${unit.kind || "unit"} · ${unit.status}`),
      el("div", {}, `device ${unit.device_id || "–"}`),
      el("div", {}, `fix ${age(fixAge)} ago · ±${metres(unit.accuracy_m)}`),
    );
  }

  /** Draws one unit (a new marker the first time, the same marker after). */
  render(unit, visible) {
    let marker = this.markers.get(unit.id);
    if (!visible || unit.lon === undefined || unit.lon === null) {
      if (marker) this.group.removeLayer(marker);
      return;
    }
    if (!marker) {
      marker = L.marker([unit.lat, unit.lon], { icon: this.icon(unit), keyboard: false });
      marker.bindTooltip(() => this.tooltip(unit), { direction: "top", offset: [0, -12] });
      this.markers.set(unit.id, marker);
    } else {
      marker.setLatLng([unit.lat, unit.lon]);
    }
    if (!this.group.hasLayer(marker)) this.group.addLayer(marker);
    this.decorate(unit, marker);
  }

  decorate(unit, marker) {
    const node = marker.getElement()?.querySelector(".unit");
    if (!node) return;
    const stale = !unit.tsMs || this.clock() - unit.tsMs > this.staleAfterS * 1000;
    const cls = `unit kind-${unit.kind} status-${unit.status}${stale ? " stale" : ""}`;
    if (node.className !== cls) node.className = cls;
    const badge = node.querySelector(".badge");
    const text = (BADGE[unit.status] || unit.status) + (stale ? " ⌛" : "");
    if (badge.textContent !== text) badge.textContent = text;
    const arrow = node.querySelector(".arrow");
    if (unit.heading === undefined) arrow.classList.add("none");
    else {
      arrow.classList.remove("none");
      arrow.style.transform = `rotate(${Math.round(unit.heading)}deg)`; // CSSOM: allowed by the CSP
    }
  }

  /** Re-checks staleness of every drawn unit (fixes age without events). */
  refresh(units) {
    for (const [id, marker] of this.markers) {
      const unit = units.get(id);
      if (unit) this.decorate(unit, marker);
    }
  }
}
