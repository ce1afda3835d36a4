// Wall mode's counters: on duty, available, open incidents by priority (counted from what the page
// follows), today's median response (from the API, once a minute) and the grids' raised coverage gaps.

import { call } from "./api.js";
import { age, el } from "./dom.js";

const PRIORITIES = ["P1", "P2", "P3", "P4"];

export class Wall {
  constructor(root) {
    this.root = root;
    this.median = null;
    this.root.hidden = false;
    this.poll();
    setInterval(() => this.poll(), 60000);
  }

  async poll() {
    try {
      const found = await call("GET", "/v1/map/response-today");
      this.median = found.median_response_s;
    } catch {
      /* the counters show the last value; the connection badge tells the rest */
    }
  }

  draw(units, incidents, gaps) {
    let onDuty = 0;
    let available = 0;
    for (const u of units.values()) {
      if (u.status !== "off_duty" && u.status !== "out_of_service") onDuty += 1;
      if (u.status === "available") available += 1;
    }
    const open = Object.fromEntries(PRIORITIES.map((p) => [p, 0]));
    for (const i of incidents.values()) open[i.priority] = (open[i.priority] || 0) + 1;
    const counter = (id, label, value) =>
      el("div", { class: "counter", id }, el("span", { class: "value" }, value), el("span", { class: "label" }, label));
    this.root.replaceChildren(
      counter("count-on-duty", "on duty", onDuty),
      counter("count-available", "available", available),
      ...PRIORITIES.map((p) => counter(`count-open-${p}`, `open ${p}`, open[p])),
      counter("count-median", "median response today", this.median === null ? "–" : age(this.median)),
      counter("count-gaps", "coverage gaps", gaps),
    );
  }
}
