// A roll call of a grid, started from the page (POST /v1/rollcalls, a dispatcher's) and watched: each called
// unit's answer and result as it arrives (the stream's rollcall.* events trigger a reload of
// GET /v1/rollcalls/{id}), until it closes.

import { call } from "./api.js";
import { el } from "./dom.js";

export class RollCall {
  constructor(form, output, { say }) {
    Object.assign(this, { form, output, say });
    this.id = null;
    this.loading = false;
    this.again = false;
    form.addEventListener("submit", (e) => { e.preventDefault(); this.start(); });
  }

  /** The grids one may call ({id, name}), once they are loaded. */
  offer(grids) {
    const select = this.form.querySelector("select");
    const chosen = select.value; // a new list keeps the grid the dispatcher had picked
    select.replaceChildren(...grids.map((g) => el("option", { value: g.id }, g.name)));
    if (grids.some((g) => g.id === chosen)) select.value = chosen;
  }

  async start() {
    const data = new FormData(this.form);
    try {
      const made = await call("POST", "/v1/rollcalls", {
        scope: { kind: "grid", grid_id: data.get("grid") }, deadline_s: Number(data.get("deadline")),
      });
      this.id = made.id;
      this.say(`roll call ${made.id}: ${made.units.length} units called`);
      this.draw(made);
    } catch (err) {
      this.say(`roll call: ${err.message}`);
    }
  }

  /** A stream event; reloads the roll call shown when it is about it. */
  apply(event) {
    if (!event.type.startsWith("rollcall.") || event.rollcall_id !== this.id) return;
    this.reload();
  }

  async reload() {
    if (this.loading) {
      this.again = true; // events during a load: one more load after it
      return;
    }
    this.loading = true;
    try {
      this.draw(await call("GET", `/v1/rollcalls/${encodeURIComponent(this.id)}`));
    } catch (err) {
      this.say(`roll call ${this.id}: ${err.message}`);
    } finally {
      this.loading = false;
    }
    if (this.again) {
      this.again = false;
      this.reload();
    }
  }

  draw(rollcall) {
    const rows = rollcall.units.map((u) =>
      el("tr", { "data-unit": u.unit_id, "data-result": u.result || "pending" },
        el("td", {}, u.unit_id),
        el("td", {}, u.answered_at ? new Date(u.answered_at).toLocaleTimeString() : "–"),
        el("td", {}, u.result ? u.result.replaceAll("_", " ") : "pending…")),
    );
    const counts = Object.entries(rollcall.counts).map(([k, v]) => `${k.replaceAll("_", " ")} ${v}`).join(" · ");
    this.output.replaceChildren(
      el("p", { id: "rollcall-state", "data-state": rollcall.state },
        `${rollcall.state === "open" ? "open until" : "closed, deadline was"} `,
        new Date(rollcall.deadline_at).toLocaleTimeString(), ` · ${counts}`),
      el("table", { id: "rollcall-units" },
        el("tr", {}, ["unit", "answered", "result"].map((h) => el("th", {}, h))), rows),
    );
    this.output.hidden = false;
  }
}
