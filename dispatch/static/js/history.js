// The panel's history tools, for every role (they only read): the heat maps' window and category, a unit's
// track for a day, and the fleet's playback. Each form's values go to its layer; the layers do the rest.

import { HEATMAPS, HeatLayer } from "./layers/heat.js";
import { Playback } from "./layers/playback.js";
import { TrackLayer } from "./layers/track.js";

const $ = (id) => document.getElementById(id);
const HOUR_MS = 3600000;

/** A `datetime-local` value (local time, minutes) for an instant. */
function local(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}

const iso = (value) => new Date(value).toISOString();

export function historyTools(map, { staleAfterS, say, layerToggle, onPlayback }) {
  const now = Date.now();
  $("heat-from").value = local(now - 7 * 24 * HOUR_MS);
  $("heat-to").value = local(now);
  $("track-day").value = local(now).slice(0, 10);
  $("playback-from").value = local(now - HOUR_MS);
  $("playback-to").value = local(now);

  const heat = Object.fromEntries(Object.keys(HEATMAPS).map((kind) => [kind, new HeatLayer(map, kind, say)]));
  const query = () => ({
    from: iso($("heat-from").value), to: iso($("heat-to").value),
    category: $("heat-category").value.trim(), res: Number($("heat-res").value),
  });
  for (const [kind, layer] of Object.entries(heat)) {
    layerToggle(`heat-${kind}`, HEATMAPS[kind].label, (on) => layer.show(on, query()), false);
  }
  $("heat-form").addEventListener("submit", (e) => {
    e.preventDefault();
    Object.values(heat).forEach((layer) => layer.load(query()));
  });

  const track = new TrackLayer(map, { slider: $("track-slider"), clock: $("track-clock"), say });
  $("track-form").addEventListener("submit", (e) => {
    e.preventDefault();
    track.load($("track-unit").value.trim(), $("track-day").value).catch((err) => say(`track: ${err.message}`));
  });
  $("track-clear").addEventListener("click", () => track.clear());

  const playback = new Playback(map, {
    staleAfterS, slider: $("playback-slider"), clock: $("playback-clock"), say, onActive: onPlayback,
  });
  $("playback-form").addEventListener("submit", (e) => {
    e.preventDefault();
    playback.load(iso($("playback-from").value), iso($("playback-to").value), Number($("playback-step").value));
  });
  $("playback-play").addEventListener("click", () => playback.play());
  $("playback-pause").addEventListener("click", () => playback.pause());
  $("playback-live").addEventListener("click", () => playback.stop());
  return { heat, track, playback };
}
