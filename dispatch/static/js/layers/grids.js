// Patrol grids, both levels, each toggled: police grids drawn with a thick solid border, community grids
// with a thin dashed one. Each grid's label names it and its assigned officer; a coverage gap and an
// out-of-grid holder are highlighted by a red fill AND a written label ("GAP", "OUT"), never by colour alone.
// Boundaries come from GET /v1/grids, who covers what from GET /v1/grids/coverage, reloaded when a grid,
// coverage or out-of-grid event arrives (coalesced: one reload however many events came at once).

import { call } from "../api.js";
import { el } from "../dom.js";

export const LEVELS = { police: "Police grids", community: "Community grids" };
const STYLE = {
  police: { color: "#1d2b4f", fillColor: "#1d2b4f", weight: 3, fillOpacity: 0.03 },
  community: { color: "#4f6a8f", fillColor: "#4f6a8f", weight: 1.5, dashArray: "4 4", fillOpacity: 0.02 },
};
const ALERT_STYLE = { fillColor: "#d00000", fillOpacity: 0.18 };
const OUT_STATES = new Set(["outside", "out_of_grid"]);
const RELOAD_MS = 1000; // at most one coverage reload a second, however busy the borders are

export class GridsLayer {
  constructor(map) {
    this.map = map;
    this.shown = { police: true, community: false };
    this.groups = { police: L.layerGroup(), community: L.layerGroup() };
    this.labels = L.layerGroup().addTo(map);
    this.grids = new Map(); // id -> { feature, layer, coverage }
    this.timer = 0;
    this.loaded = false;
  }

  async load() {
    const found = await call("GET", "/v1/grids");
    for (const feature of found.features) {
      const level = feature.properties.level in STYLE ? feature.properties.level : "community";
      const layer = L.geoJSON(feature, { style: STYLE[level], interactive: true });
      layer.bindTooltip(() => this.tooltip(feature.id), { sticky: true });
      this.grids.set(feature.id, { feature, layer, level, coverage: null });
      this.groups[level].addLayer(layer);
    }
    for (const level of Object.keys(this.groups)) this.show(level, this.shown[level]);
    await this.reload();
    this.loaded = true;
  }

  show(level, on) {
    this.shown[level] = on;
    if (on) this.groups[level].addTo(this.map);
    else this.groups[level].remove();
    this.drawLabels();
  }

  /** An event about grids arrived: reload the coverage soon (once for a burst of events). */
  touch() {
    if (!this.timer) this.timer = setTimeout(() => { this.timer = 0; this.reload(); }, RELOAD_MS);
  }

  async reload() {
    const found = await call("GET", "/v1/grids/coverage");
    for (const cover of found.grids) {
      const grid = this.grids.get(cover.grid_id);
      if (grid) grid.coverage = cover;
    }
    for (const grid of this.grids.values()) {
      const alert = flags(grid.coverage).length > 0;
      grid.layer.setStyle({ ...STYLE[grid.level], ...(alert ? ALERT_STYLE : {}) });
    }
    this.drawLabels();
  }

  drawLabels() {
    this.labels.clearLayers();
    for (const [id, grid] of this.grids) {
      if (!this.shown[grid.level]) continue;
      const marks = flags(grid.coverage);
      const holder = grid.coverage?.holder?.unit_id;
      if (!marks.length && (grid.level !== "police" || !holder)) continue;
      const node = el("div", { class: `grid-label${marks.length ? " alert" : ""}`, "data-grid": id },
        marks.length ? el("strong", {}, `⚠ ${marks.join(" · ")} `) : null,
        `${grid.feature.properties.name}${holder ? `: ${holder}` : ""}`);
      const at = grid.layer.getBounds().getCenter();
      this.labels.addLayer(L.marker(at, {
        icon: L.divIcon({ html: node, className: "grid-label-icon", iconSize: null }),
        interactive: false, keyboard: false,
      }));
    }
  }

  tooltip(id) {
    const grid = this.grids.get(id);
    const cover = grid.coverage;
    const holder = cover?.holder;
    return el("div", { class: "grid-tip" },
      el("strong", {}, grid.feature.properties.name), ` (${grid.level})`,
      el("div", {}, holder ? `assigned: ${holder.unit_id} · ${holder.status || "–"}` : "no officer assigned"),
      holder && !holder.covering ? el("div", {}, `not covering: ${holder.reason}`) : null,
      holder?.out_of_grid ? el("div", {}, `position: ${holder.out_of_grid_reason || holder.out_of_grid}`) : null,
      cover?.gap ? el("div", {}, `coverage gap since ${new Date(cover.gap.since).toLocaleTimeString()}`) : null,
      el("div", {}, `units inside: ${cover?.inside.map((i) => i.unit_id).join(", ") || "none"}`),
    );
  }

  /** Whether there is a grid of `level`. */
  has(level) {
    return [...this.grids.values()].some((g) => g.level === level);
  }

  /** Every grid's coverage as last loaded. */
  coverage() {
    return [...this.grids.values()].map((g) => g.coverage).filter(Boolean);
  }

  /** How many grids have a raised coverage gap now (the wall's counter). */
  gaps() {
    return this.coverage().filter((c) => c.gap?.raised_at).length;
  }

  /** The grids offered to a roll call (id and name), police first. */
  choices() {
    return [...this.grids.values()]
      .sort((a, b) => a.level.localeCompare(b.level) * -1 || a.feature.properties.name.localeCompare(b.feature.properties.name))
      .map((g) => ({ id: g.feature.id, name: `${g.feature.properties.name} (${g.level})` }));
  }
}

/** What is wrong with a grid's coverage, in words: a raised gap, an out-of-grid holder. */
export function flags(cover) {
  const found = [];
  if (cover?.gap?.raised_at) found.push("GAP");
  if (cover?.holder && OUT_STATES.has(cover.holder.out_of_grid)) found.push(`OUT ${cover.holder.unit_id}`);
  return found;
}
