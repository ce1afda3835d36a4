// Heat maps: the incidents counted per H3 hexagon (GET /v1/heatmap/incidents) and the patrol presence, on-duty
// unit-minutes per hexagon (GET /v1/heatmap/patrol), over the panel form's time window (and, for incidents,
// its category).
// A hexagon's shade grows with its value and its tooltip writes the value: shade is not the only signal.

import { ApiError, call } from "../api.js";
import { el } from "../dom.js";

export const HEATMAPS = {
  incidents: { label: "Incident heat map", path: "/v1/heatmap/incidents", colour: "#c0392b", unit: "incidents" },
  patrol: { label: "Patrol presence", path: "/v1/heatmap/patrol", colour: "#1f5fa8", unit: "unit-minutes" },
};

/** A hexagon's value: `count` for incidents; patrol presence names its own measure (minutes). */
export function valueOf(properties) {
  for (const key of ["count", "unit_minutes", "minutes", "value"]) {
    if (typeof properties[key] === "number") return properties[key];
  }
  return 0;
}

export class HeatLayer {
  constructor(map, kind, say) {
    Object.assign(this, { map, kind, say, spec: HEATMAPS[kind] });
    this.group = L.layerGroup();
    this.visible = false;
    this.last = null; // { total, max, cells } of the last answer, read by the tests
  }

  async show(on, query) {
    this.visible = on;
    if (!on) {
      this.group.remove();
      return;
    }
    this.group.addTo(this.map);
    await this.load(query);
  }

  /** Reloads for `query` ({from, to, category, res}) when shown. */
  async load(query) {
    if (!this.visible) return;
    const params = new URLSearchParams({ res: String(query.res), from: query.from, to: query.to });
    // The category is an incident's; patrol presence has none (it counts on-duty time, whatever happened).
    if (query.category && this.kind === "incidents") params.set("category", query.category);
    let found;
    try {
      found = await call("GET", `${this.spec.path}?${params}`);
    } catch (err) {
      this.group.clearLayers();
      this.last = { error: err.status || 0 };
      const why = err instanceof ApiError && err.status === 404
        ? "not served by this Outpost yet" : err.message;
      this.say(`${this.spec.label}: ${why}`);
      return;
    }
    this.draw(found);
  }

  draw(found) {
    this.group.clearLayers();
    const values = found.features.map((f) => valueOf(f.properties));
    const max = Math.max(1, ...values);
    found.features.forEach((feature, n) => {
      const share = values[n] / max;
      const layer = L.geoJSON(feature, {
        style: { color: this.spec.colour, weight: 0.5, fillColor: this.spec.colour, fillOpacity: 0.1 + 0.6 * share },
      });
      layer.bindTooltip(() => el("div", {}, `${this.spec.label}: ${round(values[n])} ${this.spec.unit}`));
      this.group.addLayer(layer);
    });
    this.last = { cells: values.length, max, total: values.reduce((a, b) => a + b, 0) };
    this.say(`${this.spec.label}: ${this.last.cells} hexagons, at most ${round(max)} ${this.spec.unit}`);
  }
}

function round(value) {
  return Number.isInteger(value) ? value : value.toFixed(1);
}
