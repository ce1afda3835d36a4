// The live map: sign in, load the snapshot, follow the stream. Stream events are applied to plain state at
// once and drawn once per animation frame (only what changed). Layers are toggled in the panel, each in its
// own module (layers/); grid, alert and roll-call events go to their modules; the history tools (heat maps,
// a unit's track, fleet playback) are wired in history.js.

import { Alerts } from "./alerts.js";
import { ACTIVE_STATES, allUnits, mapConfig, openIncidents, token } from "./api.js";
import { el } from "./dom.js";
import { historyTools } from "./history.js";
import { GridsLayer, LEVELS } from "./layers/grids.js";
import { IncidentsLayer } from "./layers/incidents.js";
import { UnitsLayer } from "./layers/units.js";
import { IncidentPanel, reportForm } from "./panel.js";
import { RollCall } from "./rollcall.js";
import { LiveStream } from "./stream.js";
import { Wall } from "./wall.js";

const wallMode = new URLSearchParams(location.search).get("wall") === "1";
const units = new Map();
const incidents = new Map();
const dirtyUnits = new Set();
const dirtyIncidents = new Set();
let frame = 0;
let snapshotPending = null; // events that arrive while a snapshot loads, applied after it
const debug = { units, incidents, eventIds: [], resyncs: 0, snapshots: 0, ready: false, stream: null, tools: null };
window.outpost = debug; // read by the browser tests; nothing secret in it

function say(text) {
  document.getElementById("message").textContent = text;
}

function schedule() {
  if (!frame) frame = requestAnimationFrame(draw);
}

function unitFrom(item) {
  const unit = units.get(item.id) || { id: item.id };
  Object.assign(unit, { name: item.name, kind: item.kind, status: item.status });
  if (item.position) {
    const p = item.position;
    UnitsLayer.moveTo(unit, p.lon, p.lat, Date.parse(p.ts));
    Object.assign(unit, { accuracy_m: p.accuracy_m, device_id: p.device_id });
  }
  units.set(unit.id, unit);
  dirtyUnits.add(unit.id);
}

function incidentFrom(summary) {
  const incident = incidents.get(summary.id) || { id: summary.id, offers: new Map() };
  Object.assign(incident, {
    state: summary.state, priority: summary.priority, category: summary.category,
    lon: summary.lon, lat: summary.lat,
  });
  incidents.set(incident.id, incident);
  dirtyIncidents.add(incident.id);
}

async function loadSnapshot() {
  snapshotPending = [];
  const [unitList, incidentList] = await Promise.all([allUnits(), openIncidents()]);
  unitList.forEach(unitFrom);
  document.getElementById("unit-ids").replaceChildren(...unitList.map((u) => el("option", { value: u.id })));
  const open = new Set(incidentList.map((i) => i.id));
  for (const id of incidents.keys()) if (!open.has(id)) { incidents.delete(id); dirtyIncidents.add(id); }
  incidentList.forEach(incidentFrom);
  const queued = snapshotPending;
  snapshotPending = null;
  queued.forEach(([event, id]) => apply(event, id));
  if (grids.loaded) grids.reload().catch((err) => say(err.message));
  alerts.load().catch((err) => say(`alerts: ${err.message}`));
  debug.snapshots += 1;
  debug.ready = true;
  schedule();
}

function apply(event, id) {
  if (snapshotPending) {
    snapshotPending.push([event, id]);
    return;
  }
  if (id !== null) debug.eventIds.push(id);
  if (debug.eventIds.length > 100000) debug.eventIds.splice(0, 50000);
  const type = event.type;
  if (type === "resync") {
    debug.resyncs += 1;
    loadSnapshot().catch((err) => say(`reload: ${err.message}`));
  } else if (GRID_EVENTS.some((prefix) => type.startsWith(prefix))) {
    grids.touch();
    alerts.apply(event);
  } else if (type.startsWith("rollcall.")) {
    rollcall?.apply(event);
  } else if (type === "unit.moved" || type === "unit.snapshot") {
    const unit = units.get(event.unit_id) || { id: event.unit_id, status: event.status || "available" };
    if (UnitsLayer.moveTo(unit, event.lon, event.lat, Date.parse(event.ts))) {
      Object.assign(unit, { accuracy_m: event.accuracy_m, device_id: event.device_id ?? unit.device_id });
    }
    units.set(unit.id, unit);
    dirtyUnits.add(unit.id);
  } else if (type === "unit.status") {
    const unit = units.get(event.unit_id) || { id: event.unit_id };
    unit.status = event.new;
    units.set(unit.id, unit);
    dirtyUnits.add(unit.id);
  } else if (type.startsWith("incident.") && event.incident_id) {
    const incident = incidents.get(event.incident_id) || { id: event.incident_id, offers: new Map() };
    Object.assign(incident, {
      state: event.state, priority: event.priority, category: event.category, lon: event.lon, lat: event.lat,
    });
    if (event.offer_id) {
      const state = { offered: "pending", accepted: "accepted", declined: "declined", timed_out: "timed_out",
        offer_withdrawn: "withdrawn" }[type.slice(9)];
      if (state) incident.offers.set(event.offer_id, { unit_id: event.unit_id, state });
      if (state === "timed_out") say(`⌛ offer of ${incident.priority} ${incident.category} to ${event.unit_id} timed out`);
    }
    incidents.set(incident.id, incident);
    dirtyIncidents.add(incident.id);
    if (panel?.id === incident.id) panel.refresh();
  }
  schedule();
}

const GRID_EVENTS = ["grid.", "out_of_grid.", "coverage_gap.", "device_offline.", "battery_low.", "alert."];
let unitsLayer;
let incidentsLayer;
let grids;
let alerts;
let rollcall;
let panel;
let wall;
let playing = false; // fleet playback shows its own markers: the live ones are hidden meanwhile
const shown = { units: true, incidents: true };

function draw() {
  frame = 0;
  for (const id of dirtyUnits) unitsLayer.render(units.get(id), shown.units && !playing);
  for (const id of dirtyIncidents) {
    const incident = incidents.get(id);
    if (!incident || !ACTIVE_STATES.includes(incident.state)) {
      incidentsLayer.render({ id }, false);
      incidents.delete(id);
    } else incidentsLayer.render(incident, shown.incidents);
  }
  if (dirtyIncidents.size || dirtyUnits.size) incidentsLayer.drawOffers(shown.incidents ? incidents : new Map(), units);
  dirtyUnits.clear();
  dirtyIncidents.clear();
  wall?.draw(units, incidents, grids.gaps());
}

function redrawUnits() {
  units.forEach((_, id) => dirtyUnits.add(id));
  schedule();
}

function layerToggle(name, label, onChange, checked = true) {
  const box = el("input", checked ? { type: "checkbox", id: `layer-${name}`, checked: "" }
    : { type: "checkbox", id: `layer-${name}` });
  box.addEventListener("change", () => onChange(box.checked));
  document.getElementById("layers").append(el("label", {}, box, ` ${label}`));
}

/** Draws the tiles and the shipped GeoJSON; the drawn layers (promises) by name. */
function baseLayers(map, config) {
  const drawn = {};
  if (config.tiles) {
    L.tileLayer(config.tiles.url, { attribution: config.tiles.attribution, maxZoom: 19 }).addTo(map);
  }
  for (const layer of config.base_layers) {
    const style = layer.name === "Roads"
      ? { color: "#8a8f98", weight: 1, interactive: false }
      : { color: "#3b4a6b", weight: 2, fill: true, fillOpacity: 0.04, interactive: false };
    drawn[layer.name] = fetch(layer.url).then((r) => r.json()).then((data) => {
      const geo = L.geoJSON(data, { style, attribution: layer.attribution }).addTo(map);
      geo.bringToBack();
      return geo;
    }).catch((err) => say(`${layer.name}: ${err.message}`));
  }
  return drawn;
}

async function start() {
  const { role, token_name: name, ...config } = await mapConfig();
  document.getElementById("signin").hidden = true;
  document.getElementById("app").hidden = false;
  document.body.classList.toggle("wall", wallMode);
  document.body.dataset.role = role;
  document.getElementById("who").textContent = `${name} (${role})`;
  const map = L.map("map", { zoomControl: !wallMode, preferCanvas: false })
    .setView([config.center[1], config.center[0]], config.zoom);
  const base = baseLayers(map, config);
  unitsLayer = new UnitsLayer(map, config.stale_after_s);
  const canDispatch = (role === "dispatcher" || role === "admin") && !wallMode;
  panel = new IncidentPanel(document.getElementById("incident"), { canDispatch, say });
  incidentsLayer = new IncidentsLayer(map, (id) => panel.show(id));
  if (canDispatch) {
    document.getElementById("actions").hidden = false;
    reportForm(map, { say, onCreated: (id) => panel.show(id) });
  }
  layerToggle("units", "Units", (on) => { shown.units = on; redrawUnits(); });
  layerToggle("incidents", "Incidents", (on) => {
    shown.incidents = on; incidents.forEach((_, id) => dirtyIncidents.add(id)); schedule();
  });
  grids = new GridsLayer(map);
  for (const [level, label] of Object.entries(LEVELS)) {
    layerToggle(`grids-${level}`, label, (on) => grids.show(level, on), grids.shown[level]);
  }
  alerts = new Alerts(document.getElementById("alerts"), { canAcknowledge: canDispatch, say });
  alerts.draw();
  if (canDispatch) {
    document.getElementById("rollcall").hidden = false;
    rollcall = new RollCall(document.getElementById("rollcall-form"), document.getElementById("rollcall-output"), { say });
  }
  grids.load()
    .then(() => {
      // The station's own police grids replace the shipped districts (drawn only while there are none).
      if (grids.has("police")) base["Police districts"]?.then((layer) => layer?.remove());
      rollcall?.offer(grids.choices());
      schedule();
    })
    .catch((err) => say(`grids: ${err.message}`));
  debug.tools = historyTools(map, {
    staleAfterS: config.stale_after_s, say, layerToggle,
    onPlayback: (active) => { playing = active; redrawUnits(); },
  });
  Object.assign(debug, { grids, alerts });
  if (wallMode) wall = new Wall(document.getElementById("wall"));
  setInterval(() => { unitsLayer.refresh(units); wall?.draw(units, incidents, grids.gaps()); }, 5000);

  const conn = document.getElementById("conn");
  const stream = new LiveStream({
    onEvent: apply,
    // A fresh stream stands at this id: the snapshot loaded now misses nothing before it.
    onPosition: () => loadSnapshot().catch((err) => say(err.message)),
    onState: (state) => { conn.textContent = state; conn.className = `conn ${state}`; },
    onUnauthorized: signOut,
  });
  debug.stream = stream;
  stream.start();
}

function signOut() {
  token.clear();
  location.replace("/map" + location.search);
}

function signIn() {
  const form = document.getElementById("signin");
  form.hidden = false;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const value = document.getElementById("token").value.trim();
    token.set(value);
    try {
      await start();
    } catch (err) {
      token.clear();
      document.getElementById("signin-error").textContent =
        err.status === 401 ? "That token is unknown or revoked." : `Cannot sign in: ${err.message}`;
    }
  });
}

document.getElementById("signout").addEventListener("click", signOut);
if (token.get()) start().catch(() => { token.clear(); signIn(); });
else signIn();
