// Fleet playback between two times: the frames of GET /v1/units/snapshot?from=&to=&step_s= (every unit's
// last fix at or before each frame's time, and its status then), drawn with the units layer's own markers
// and symbols on a layer of their own, stepped by a slider or played. While it plays the live units are
// hidden (the stream is still followed and drawn again when playback ends). A unit with no fix inside the
// server's look-back window at a frame is not drawn in it.

import { ApiError, call } from "../api.js";
import { UnitsLayer } from "./units.js";

const PLAY_MS = 500; // one frame every half second

export class Playback {
  constructor(map, { staleAfterS, slider, clock, say, onActive }) {
    Object.assign(this, { map, slider, clock, say, onActive });
    this.frameTs = 0;
    this.layer = new UnitsLayer(map, staleAfterS, () => this.frameTs);
    this.layer.group.remove();
    this.frames = [];
    this.units = new Map();
    this.timer = 0;
    this.index = -1;
    slider.addEventListener("input", () => this.seek(Number(slider.value)));
  }

  /** Loads the frames between `from` and `to` (ISO) every `stepS` seconds; the number of frames. */
  async load(from, to, stepS) {
    const params = new URLSearchParams({ from, to, step_s: String(stepS) });
    let found;
    try {
      found = await call("GET", `/v1/units/snapshot?${params}`);
    } catch (err) {
      this.say(`playback: ${err instanceof ApiError && err.status === 404 ? "not served by this Outpost yet" : err.message}`);
      return 0;
    }
    this.frames = found.frames;
    if (!this.frames.length) {
      this.say("playback: no frame in that window");
      return 0;
    }
    Object.assign(this.slider, { min: "0", max: String(this.frames.length - 1), value: "0" });
    this.slider.disabled = false;
    this.layer.group.addTo(this.map);
    this.onActive(true);
    this.seek(0);
    return this.frames.length;
  }

  /** Draws frame `n`: each unit's marker moved (created once, reused in every frame). */
  seek(n) {
    const frame = this.frames[n];
    if (!frame) return;
    this.index = n;
    this.frameTs = Date.parse(frame.at);
    const seen = new Set();
    for (const item of frame.units) {
      const unit = this.units.get(item.id) || { id: item.id };
      Object.assign(unit, {
        name: item.name, kind: item.kind, status: item.status, device_id: item.device_id,
        lon: item.lon, lat: item.lat, tsMs: item.ts ? Date.parse(item.ts) : null,
        heading: item.heading ?? undefined,
      });
      this.units.set(unit.id, unit);
      seen.add(unit.id);
      this.layer.render(unit, true);
    }
    for (const [id, unit] of this.units) if (!seen.has(id)) this.layer.render({ ...unit, lon: null }, false);
    this.slider.value = String(n);
    this.clock.textContent = `playback ${new Date(frame.at).toLocaleString()} (${n + 1}/${this.frames.length})`;
    this.clock.dataset.at = frame.at;
  }

  play() {
    if (this.timer || !this.frames.length) return;
    this.timer = setInterval(() => {
      if (this.index >= this.frames.length - 1) this.pause();
      else this.seek(this.index + 1);
    }, PLAY_MS);
  }

  pause() {
    clearInterval(this.timer);
    this.timer = 0;
  }

  /** Back to the live picture. */
  stop() {
    this.pause();
    this.layer.group.remove();
    this.frames = [];
    this.slider.disabled = true;
    this.clock.textContent = "";
    this.onActive(false);
  }
}
