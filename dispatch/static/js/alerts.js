// The alerts list: out-of-grid officers, coverage gaps, devices offline and low batteries, raised and
// cleared from the stream, and those already raised when the page loads (GET /v1/alerts). Each alert says
// in words what it is and whether it is still raised; a dispatcher acknowledges it through the API
// (POST /v1/alerts/{id}/acknowledge), and every console marks it when the stream says `alert.acknowledged`.

import { call } from "./api.js";
import { el } from "./dom.js";

const KINDS = {
  out_of_grid: "out of grid", coverage_gap: "coverage gap", device_offline: "device offline", battery_low: "low battery",
};
const SUBJECT = { out_of_grid: "unit_id", coverage_gap: "grid_id", device_offline: "device_id", battery_low: "device_id" };

export class Alerts {
  constructor(root, { canAcknowledge, say }) {
    this.root = root;
    this.canAcknowledge = canAcknowledge;
    this.say = say || (() => {});
    this.alerts = new Map(); // key -> { key, id, kind, grid_id, unit_id, device_id, reason, at, state, acknowledgedBy }
  }

  /** A stream event; true when it was an alert's. */
  apply(event) {
    if (event.type === "alert.acknowledged") {
      const alert = [...this.alerts.values()].find((a) => a.id === event.alert_id);
      if (alert) { alert.acknowledgedBy = event.by; this.draw(); }
      return true;
    }
    const [kind, what] = event.type.split(".");
    if (!(kind in KINDS) || (what !== "raised" && what !== "cleared")) return false;
    this.set(kind, event, what);
    return true;
  }

  /** The alerts raised now, as the server holds them (raised before the page opened, acknowledgements). */
  async load() {
    const { alerts } = await call("GET", "/v1/alerts");
    for (const a of alerts) {
      const kind = a.type.split(".")[0];
      if (kind in KINDS) this.set(kind, a.event, "raised", a.acknowledged_by);
    }
  }

  set(kind, event, state, acknowledgedBy = null) {
    const key = `${kind}:${event[SUBJECT[kind]]}`;
    const known = this.alerts.get(key);
    const sameRaise = known && state === "raised" && known.state === "raised" && known.id === event.id;
    this.alerts.set(key, { key, kind, id: state === "raised" ? event.id : known?.id, grid_id: event.grid_id,
      unit_id: event.unit_id, device_id: event.device_id, reason: event.reason, at: event.at, state,
      acknowledgedBy: acknowledgedBy || (sameRaise ? known.acknowledgedBy : null) });
    this.draw();
  }

  async acknowledge(key) {
    const alert = this.alerts.get(key);
    if (!alert?.id) return;
    try {
      const done = await call("POST", `/v1/alerts/${encodeURIComponent(alert.id)}/acknowledge`);
      alert.acknowledgedBy = done.acknowledged_by;
    } catch (err) {
      this.say(`acknowledge: ${err.message}`);
    }
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
    const acked = Boolean(a.acknowledgedBy);
    const label = a.state === "raised" ? (acked ? `⚠ raised · acknowledged by ${a.acknowledgedBy}` : "⚠ RAISED") : "✓ cleared";
    const about = [a.unit_id, a.device_id && a.device_id !== a.unit_id ? `device ${a.device_id}` : null,
      a.grid_id ? `grid ${a.grid_id}` : null].filter(Boolean).join(" · ");
    return el("li", { class: `alert ${a.state}${acked ? " acknowledged" : ""}`, "data-alert": a.key,
      "data-state": a.state, "data-acknowledged": String(acked) },
      el("strong", {}, `${label}: ${KINDS[a.kind]}`), " ",
      `${about || "–"} · ${when}`,
      a.reason ? el("div", { class: "hint" }, a.reason) : null,
      this.canAcknowledge && a.state === "raised" && !acked
        ? el("button", { type: "button", class: "ack", onclick: () => this.acknowledge(a.key) }, "Acknowledge")
        : null);
  }
}
