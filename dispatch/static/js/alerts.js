// The alerts list: out-of-grid officers and coverage gaps, raised and cleared from the stream (and those
// already raised when the page loads, from the grids' coverage). Each alert says in words what it is and
// whether it is still raised; a dispatcher acknowledges it, which marks it seen.
//
// Acknowledging is this screen's only: the API has no acknowledgement route yet (the patrol watch's alerts
// are raised and cleared by the watch itself), so an acknowledged alert stays listed, marked "acknowledged
// here", until it clears.

import { el } from "./dom.js";

const KINDS = { out_of_grid: "out of grid", coverage_gap: "coverage gap" };

export class Alerts {
  constructor(root, { canAcknowledge }) {
    this.root = root;
    this.canAcknowledge = canAcknowledge;
    this.alerts = new Map(); // key -> { kind, grid_id, unit_id, reason, at, state, acknowledged }
  }

  /** A stream event; true when it was an alert's. */
  apply(event) {
    const [kind, what] = event.type.split(".");
    if (!(kind in KINDS) || (what !== "raised" && what !== "cleared")) return false;
    this.set(kind, event, what);
    return true;
  }

  /** The alerts the coverage shows raised now (loaded with the page: raised before it opened). */
  fromCoverage(grids) {
    for (const cover of grids) {
      if (cover.gap?.raised_at) {
        this.set("coverage_gap", { grid_id: cover.grid_id, unit_id: cover.holder?.unit_id, reason: cover.gap.reason,
          at: cover.gap.raised_at }, "raised", true);
      }
      const holder = cover.holder;
      if (holder?.out_of_grid === "out_of_grid") {
        this.set("out_of_grid", { grid_id: cover.grid_id, unit_id: holder.unit_id, reason: holder.out_of_grid_reason,
          at: null }, "raised", true);
      }
    }
  }

  set(kind, event, state, keepKnown = false) {
    const key = `${kind}:${kind === "out_of_grid" ? event.unit_id : event.grid_id}`;
    const known = this.alerts.get(key);
    if (keepKnown && known) return;
    const acknowledged = state === "raised" && known?.state === "raised" ? known.acknowledged : false;
    this.alerts.set(key, { key, kind, grid_id: event.grid_id, unit_id: event.unit_id, reason: event.reason,
      at: event.at, state, acknowledged });
    this.draw();
  }

  acknowledge(key) {
    const alert = this.alerts.get(key);
    if (alert) alert.acknowledged = true;
    this.draw();
  }

  raised() {
    return [...this.alerts.values()].filter((a) => a.state === "raised").length;
  }

  draw() {
    const items = [...this.alerts.values()].sort((a, b) => (a.state === b.state ? 0 : a.state === "raised" ? -1 : 1));
    this.root.replaceChildren(
      el("h2", {}, `Alerts (${this.raised()} raised)`),
      items.length
        ? el("ul", { id: "alert-list" }, items.map((a) => this.item(a)))
        : el("p", {}, "none"),
    );
  }

  item(a) {
    const when = a.at ? new Date(a.at).toLocaleTimeString() : "before this page opened";
    const label = a.state === "raised" ? (a.acknowledged ? "⚠ raised · acknowledged here" : "⚠ RAISED") : "✓ cleared";
    return el("li", { class: `alert ${a.state}${a.acknowledged ? " acknowledged" : ""}`, "data-alert": a.key,
      "data-state": a.state, "data-acknowledged": String(a.acknowledged) },
      el("strong", {}, `${label}: ${KINDS[a.kind]}`), " ",
      `${a.unit_id ? `${a.unit_id} · ` : ""}grid ${a.grid_id || "–"} · ${when}`,
      a.reason ? el("div", { class: "hint" }, a.reason) : null,
      this.canAcknowledge && a.state === "raised" && !a.acknowledged
        ? el("button", { type: "button", class: "ack", onclick: () => this.acknowledge(a.key) }, "Acknowledge")
        : null);
  }
}
