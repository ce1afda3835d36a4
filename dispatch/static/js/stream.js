// The live stream, read with fetch so the token goes in the Authorization header (EventSource cannot send
// one). On a cut it reconnects with Last-Event-ID and the server sends what was missed; when the server no
// longer holds it, a `resync` event arrives and the page reloads its snapshot. Ids only ever increase.

import { headers } from "./api.js";

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 10000;

export class LiveStream {
  /**
   * @param {(event: object, id: number|null) => void} onEvent  every event with data, in order
   * @param {(id: number) => void} onPosition  a fresh stream's position (no event missed before it)
   * @param {(state: string) => void} onState  "live", "down" or "connecting"
   */
  constructor({ onEvent, onPosition, onState, onUnauthorized }) {
    Object.assign(this, { onEvent, onPosition, onState, onUnauthorized });
    this.lastId = null;
    this.retryMs = RETRY_MIN_MS;
    this.controller = null;
    this.stopped = false;
    this.connections = 0;
  }

  start() {
    this.stopped = false;
    this.loop();
  }

  stop() {
    this.stopped = true;
    this.controller?.abort();
  }

  /** Drop the connection now (it comes back by itself): what a cut network does. */
  cut() {
    this.controller?.abort();
  }

  async loop() {
    while (!this.stopped) {
      this.onState("connecting");
      try {
        await this.read();
      } catch (err) {
        if (err.status === 401) {
          this.onUnauthorized();
          return;
        }
      }
      if (this.stopped) return;
      this.onState("down");
      await new Promise((resolve) => setTimeout(resolve, this.retryMs));
      this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
    }
  }

  async read() {
    this.controller = new AbortController();
    const extra = { Accept: "text/event-stream" };
    if (this.lastId !== null) extra["Last-Event-ID"] = String(this.lastId);
    const response = await fetch("/v1/stream", {
      headers: headers(extra),
      signal: this.controller.signal,
      cache: "no-store",
    });
    if (!response.ok) {
      const err = new Error(`stream: HTTP ${response.status}`);
      err.status = response.status;
      throw err;
    }
    this.connections += 1;
    this.onState("live");
    this.retryMs = RETRY_MIN_MS;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        this.block(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
  }

  block(text) {
    let id = null;
    const data = [];
    for (const line of text.split("\n")) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "id" && /^\d+$/.test(value)) id = Number(value);
      else if (field === "data") data.push(value);
    }
    if (id !== null) this.lastId = id;
    if (data.length) {
      const event = JSON.parse(data.join("\n"));
      if (event.type === "stream.closed") return; // the server dropped us: the loop reconnects
      this.onEvent(event, id);
    } else if (id !== null) {
      this.onPosition(id);
    }
  }
}
