// One unit's track for a day (GET /v1/units/{id}/track, simplified to a few metres), with a time slider:
// the line is drawn up to the slider's time and a ringed marker stands where the unit was then.

import { call } from "../api.js";
import { el } from "../dom.js";

const SIMPLIFY_M = 3;

export class TrackLayer {
  constructor(map, { slider, clock, say }) {
    Object.assign(this, { map, slider, clock, say });
    this.group = L.layerGroup().addTo(map);
    this.line = L.polyline([], { color: "#222", weight: 3, opacity: 0.8, interactive: false });
    this.rest = L.polyline([], { color: "#222", weight: 1, dashArray: "3 5", opacity: 0.5, interactive: false });
    this.here = L.marker([0, 0], {
      icon: L.divIcon({ html: el("div", { class: "track-here" }, "◎"), className: "track-icon", iconSize: [22, 22] }),
      interactive: false,
    });
    this.points = [];
    this.unitId = null;
    slider.addEventListener("input", () => this.seek(Number(slider.value)));
  }

  /** Loads `unitId`'s track over the local day `day` (YYYY-MM-DD). */
  async load(unitId, day) {
    const start = new Date(`${day}T00:00:00`);
    const end = new Date(start.getTime() + 86400000);
    const params = new URLSearchParams({ from: start.toISOString(), to: end.toISOString(),
      simplify_m: String(SIMPLIFY_M) });
    const found = await call("GET", `/v1/units/${encodeURIComponent(unitId)}/track?${params}`);
    this.unitId = unitId;
    this.points = found.features.map((f) => ({
      lat: f.geometry.coordinates[1], lon: f.geometry.coordinates[0], tsMs: Date.parse(f.properties.time),
    }));
    this.group.clearLayers();
    if (!this.points.length) {
      this.slider.disabled = true;
      this.clock.textContent = "no fix that day";
      this.say(`${unitId}: no track on ${day}`);
      return 0;
    }
    this.group.addLayer(this.rest).addLayer(this.line).addLayer(this.here);
    this.rest.setLatLngs(this.points.map((p) => [p.lat, p.lon]));
    Object.assign(this.slider, { min: "0", max: String(this.points.length - 1), value: String(this.points.length - 1) });
    this.slider.disabled = false;
    this.seek(this.points.length - 1);
    this.map.fitBounds(this.rest.getBounds(), { maxZoom: 16, padding: [20, 20] });
    return this.points.length;
  }

  /** Shows the track up to point `n`. */
  seek(n) {
    const shown = this.points.slice(0, n + 1);
    this.line.setLatLngs(shown.map((p) => [p.lat, p.lon]));
    const at = this.points[n];
    this.here.setLatLng([at.lat, at.lon]);
    this.clock.textContent = `${this.unitId} at ${new Date(at.tsMs).toLocaleTimeString()} (${n + 1}/${this.points.length})`;
    this.clock.dataset.ts = new Date(at.tsMs).toISOString();
  }

  clear() {
    this.group.clearLayers();
    this.points = [];
    this.slider.disabled = true;
    this.clock.textContent = "";
  }
}
