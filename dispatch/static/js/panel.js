// The selected incident: its state and offers, the recommended units with distance, ETA and why, and, for
// a dispatcher, an Offer button on each. Every action is a call of the public API.

import { call } from "./api.js";
import { age, el, metres } from "./dom.js";

// An offer's state in words with a sign, so a timed-out offer is seen at a glance without relying on colour.
const OFFER_WORDS = {
  pending: "… pending", accepted: "✓ accepted", declined: "✕ declined", timed_out: "⌛ timed out",
  withdrawn: "– withdrawn",
};

export class IncidentPanel {
  constructor(root, { canDispatch, say }) {
    this.root = root;
    this.canDispatch = canDispatch;
    this.say = say;
    this.id = null;
    this.loading = null;
  }

  async show(id) {
    this.id = id;
    await this.refresh();
  }

  /** Reloads the selected incident (called when an event about it arrives). */
  async refresh() {
    const id = this.id;
    if (!id) return;
    try {
      const [incident, recs] = await Promise.all([
        call("GET", `/v1/incidents/${encodeURIComponent(id)}`),
        call("GET", `/v1/incidents/${encodeURIComponent(id)}/recommendations`),
      ]);
      if (this.id === id) this.draw(incident, recs);
    } catch (err) {
      this.say(`incident ${id}: ${err.message}`);
    }
  }

  draw(incident, recs) {
    const offers = incident.offers.map((o) =>
      el("tr", { "data-offer": o.id, "data-state": o.state }, el("td", {}, o.unit_id), el("td", {}, o.slot),
        el("td", { class: "offer-state" }, OFFER_WORDS[o.state] || o.state)),
    );
    const rows = recs.slots.flatMap((slot) =>
      slot.candidates.map((c) =>
        el("tr", { "data-candidate": c.unit_id },
          el("td", {}, c.unit_id), el("td", {}, c.kind), el("td", {}, metres(c.distance_m)),
          el("td", {}, age(c.eta_s)), el("td", {}, c.reason),
          this.canDispatch
            ? el("td", {}, el("button", { type: "button", class: "offer", "data-unit": c.unit_id,
                onclick: () => this.offer(incident.id, c.unit_id) }, "Offer"))
            : null),
      ),
    );
    // replaceChildren would write a null as the text "null": leave the absent parts out.
    this.root.replaceChildren(...[
      el("h2", {}, `${incident.priority} ${incident.category}`),
      el("p", { id: "incident-state", "data-incident": incident.id }, `${incident.state} · tier ${incident.tier}`),
      incident.description ? el("p", {}, incident.description) : null,
      el("h3", {}, "Offers"),
      offers.length
        ? el("table", { id: "offers" }, el("tr", {}, el("th", {}, "unit"), el("th", {}, "slot"), el("th", {}, "state")), offers)
        : el("p", {}, "none yet"),
      el("h3", {}, "Recommended units"),
      rows.length
        ? el("table", { id: "recommendations" },
            el("tr", {}, ["unit", "kind", "distance", "ETA", "why"].map((h) => el("th", {}, h))), rows)
        : el("p", { id: "recommendations-empty" }, "no unit recommended"),
      el("button", { type: "button", onclick: () => this.close() }, "Close"),
    ].filter(Boolean));
    this.root.hidden = false;
  }

  async offer(incidentId, unitId) {
    try {
      await call("POST", `/v1/incidents/${encodeURIComponent(incidentId)}/offers`, { unit_id: unitId });
      this.say(`offered to ${unitId}`);
    } catch (err) {
      this.say(`offer to ${unitId}: ${err.message}`);
    }
    await this.refresh();
  }

  close() {
    this.id = null;
    this.root.hidden = true;
  }
}

/** The report form: a click on the map puts the place in it; submitting creates the incident. */
export function reportForm(map, { onCreated, say }) {
  const form = document.getElementById("new-incident");
  let at = null;
  map.on("click", (e) => {
    at = { lon: Number(e.latlng.lng.toFixed(6)), lat: Number(e.latlng.lat.toFixed(6)) };
    document.getElementById("new-at").textContent = `${at.lat}, ${at.lon}`;
    form.hidden = false;
  });
  document.getElementById("new-cancel").addEventListener("click", () => { form.hidden = true; });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const data = new FormData(form);
    try {
      const created = await call("POST", "/v1/incidents", {
        ...at, priority: data.get("priority"), category: data.get("category"),
        description: data.get("description") || "", source: "dispatcher",
      });
      form.hidden = true;
      say(`incident ${created.id} reported`);
      onCreated(created.id, at);
    } catch (err) {
      say(`report: ${err.message}`);
    }
  });
}
