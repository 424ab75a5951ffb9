// The agent console: one WebSocket (/ws) brings pops, the agent's state and the state of
// Asterisk's link; everything the agent does goes through POSTs.
"use strict";
import * as agent from "./agent.js";
import * as alerts from "./alerts.js";
import * as callbacks from "./callbacks.js";
import * as dialbox from "./dialbox.js";
import * as pops from "./pops.js";

function onMessage(msg) {
  if (typeof msg.type !== "string") return;
  if (msg.type.indexOf("call.") === 0) pops.onMessage(msg);
  else if (msg.type === "agent.state") agent.update(msg);
  else if (msg.type === "link.asterisk") agent.asteriskLink(!!msg.connected);
  else if (msg.type.indexOf("callbacks.") === 0) callbacks.onMessage(msg);
}

// The WebSocket, reconnected with a growing delay; the server resends open pops and the
// agent's state on each connect.
let delay = 1000;
const STALE_AFTER_MS = 3000;
function connect() {
  agent.browserLink("connecting");
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  ws.addEventListener("open", () => {
    delay = 1000;
    agent.browserLink("open");
    callbacks.refresh(); // what was assigned while the socket was down
    // The server sends the open calls right after the connect; what it did not resend by
    // then has ended.
    setTimeout(pops.settleStale, STALE_AFTER_MS);
  });
  ws.addEventListener("message", (ev) => {
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch (err) {
      return;
    }
    onMessage(msg);
  });
  ws.addEventListener("close", (ev) => {
    pops.markStale();
    if (ev.code === 1008 || ev.code === 4401) {
      agent.browserLink("closed"); // refused (too many consoles) or logged out: no retry
      return;
    }
    agent.browserLink("closed", Math.round(delay / 1000));
    setTimeout(connect, delay);
    delay = Math.min(delay * 2, 15000);
  });
}

// Answer-side shortcuts, also while typing notes: Alt+Shift+letter by physical key (so
// they work on an Arabic or French keyboard), and Ctrl+Enter in the wrap-up form.
function shortcuts() {
  document.addEventListener("keydown", (ev) => {
    if (!ev.altKey || !ev.shiftKey || ev.ctrlKey || ev.metaKey) return;
    const action = {
      KeyS: () => pops.saveOutcome(),
      KeyP: () => agent.toggle(),
      KeyD: () => dialbox.focus(),
      KeyN: () => pops.next(1, true),
    }[ev.code];
    if (!action) return;
    ev.preventDefault();
    action();
  });
}

export function start(config) {
  alerts.setup(config.alerts);
  agent.setup(config);
  dialbox.setup(config.extension || "");
  pops.setup(config.extension || "");
  callbacks.setup();
  shortcuts();
  connect();
}
