// Incidents: a square with the priority written in it (colour by priority), its border by state (dashed
// while waiting for a unit); dashed lines to the units it is offered to, solid to those that accepted.

import { el } from "../dom.js";

export class IncidentsLayer {
  constructor(map, onSelect) {
    this.group = L.layerGroup().addTo(map);
    this.lines = L.layerGroup().addTo(map);
    this.markers = new Map();
    this.onSelect = onSelect;
  }

  render(incident, visible) {
    let marker = this.markers.get(incident.id);
    if (!visible) {
      if (marker) {
        this.group.removeLayer(marker);
        this.markers.delete(incident.id);
      }
      return;
    }
    if (!marker) {
      const node = el("div", { class: "incident-marker", "data-incident": incident.id });
      marker = L.marker([incident.lat, incident.lon], {
        icon: L.divIcon({ html: node, className: "incident-icon", iconSize: [26, 26] }),
        zIndexOffset: 1000,
      });
      marker.on("click", () => this.onSelect(incident.id));
      marker.bindTooltip(() => el("div", {}, `${incident.priority} ${incident.category} · ${incident.state}`));
      this.markers.set(incident.id, marker);
      this.group.addLayer(marker);
    }
    const node = marker.getElement()?.querySelector(".incident-marker");
    if (node) {
      node.className = `incident-marker p-${incident.priority} s-${incident.state}`;
      node.textContent = incident.priority;
      node.title = `${incident.priority} ${incident.state}`;
    }
  }

  /** Lines from each incident to the units it is offered to (pending) or that accepted it. */
  drawOffers(incidents, units) {
    this.lines.clearLayers();
    for (const incident of incidents.values()) {
      for (const offer of incident.offers.values()) {
        const unit = units.get(offer.unit_id);
        if (!unit || unit.lon === undefined || !["pending", "accepted"].includes(offer.state)) continue;
        this.lines.addLayer(
          L.polyline([[incident.lat, incident.lon], [unit.lat, unit.lon]], {
            className: offer.state === "pending" ? "offer-line" : "",
            weight: 2,
            color: "#333",
            interactive: false,
          }),
        );
      }
    }
  }
}
