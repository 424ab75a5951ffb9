// The agent's availability, as Asterisk holds it: ready or paused (with a reason), and
// membership of each queue. The page never changes it on its own: a click sends the
// request, and the bar changes when the `agent.state` message comes back from AMI (so a
// pause made on the phone or by a supervisor shows the same way).
"use strict";
import { _, clock } from "./i18n.js";
import { $, clear, element, errorText, post, status } from "./common.js";

let config = {};
let state = null;
let pending = false;
let asteriskAway = false; // the state shown is only what Asterisk last said

const STATUS_TEXT = {
  idle: () => _("waiting"),
  ringing: () => _("ringing"),
  in_call: () => _("on a call"),
  unavailable: () => _("phone unreachable"),
  wrapup: () => _("wrap-up"),
  out: () => _("logged out"),
};

function members() {
  return ((state && state.queues) || []).filter((q) => q.member && q.status !== "out");
}

export function isPaused() {
  return !!(state && state.paused);
}

// The headline: what the agent is now, in words and an icon (never colour alone).
function headline() {
  if (!state) return ["unknown", _("State unknown")];
  if (asteriskAway) return ["unknown", _("State unknown while Asterisk is away")];
  if (!members().length) return ["out", _("In no queue")];
  if (state.paused) {
    return ["paused", state.reason ? _("Paused: %(reason)s", { reason: state.reason }) : _("Paused")];
  }
  if (state.wrapup_until && state.wrapup_until * 1000 > Date.now()) return ["wrapup", _("Wrap-up")];
  if (members().some((q) => q.status === "in_call")) return ["busy", _("On a call")];
  if (members().some((q) => q.status === "ringing")) return ["busy", _("Ringing")];
  return ["ready", _("Ready")];
}

function renderSince() {
  const since = $("agent-since");
  if (!since) return;
  if (state && state.wrapup_until && state.wrapup_until * 1000 > Date.now()) {
    since.textContent = _("%(time)s left", { time: clock(state.wrapup_until - Date.now() / 1000) });
  } else if (state && state.since) {
    since.textContent = _("for %(time)s", { time: clock(Date.now() / 1000 - state.since) });
  } else {
    since.textContent = "";
  }
}

function renderQueues() {
  const list = $("queue-list");
  if (!list) return;
  clear(list);
  const known = new Map(((state && state.queues) || []).map((q) => [q.queue, q]));
  const names = Array.from(new Set([...(config.queues || []), ...known.keys()]));
  for (const name of names) {
    const q = known.get(name) || { queue: name, member: false, status: "out" };
    const member = q.member && q.status !== "out";
    const statusKey = member ? (q.paused ? "paused" : q.status) : "out";
    const statusText = statusKey === "paused" ? _("paused") : (STATUS_TEXT[statusKey] || (() => q.status))();
    const parts = [
      element("span", { className: "queue-icon", "aria-hidden": "true" }, member ? "✓" : "+"),
      element("span", { className: "queue-name" }, name),
      element("span", { className: "queue-status" }, statusText),
    ];
    const dataset = { queue: name, member: String(member), status: statusKey };
    if (member && !q.dynamic) {
      // A member by the configuration (queues.conf): Asterisk will not let the page log
      // the agent out of it, so it is shown, not offered.
      const title = _("Always in %(queue)s (set in the configuration)", { queue: name });
      list.appendChild(element("li", {}, element("span", { className: "queue-toggle fixed", dataset: dataset, title: title }, ...parts)));
      continue;
    }
    const button = element(
      "button",
      {
        type: "button",
        className: "queue-toggle",
        dataset: dataset,
        "aria-pressed": String(member),
        title: member ? _("Log out of %(queue)s", { queue: name }) : _("Log in to %(queue)s", { queue: name }),
      },
      ...parts,
    );
    button.addEventListener("click", () => setMember(name, !member));
    list.appendChild(element("li", {}, button));
  }
}

export function render() {
  const [kind, text] = headline();
  const badge = $("agent-state");
  if (!badge) return;
  badge.dataset.state = kind;
  badge.querySelector(".state-icon").textContent =
    { ready: "●", paused: "❚❚", wrapup: "✎", busy: "☎", out: "⊘", unknown: "?" }[kind] || "";
  badge.querySelector(".state-text").textContent = text;
  renderSince();
  const ready = $("ready-button");
  const pause = $("pause-button");
  const paused = isPaused();
  ready.disabled = pending || asteriskAway || !state || !paused;
  pause.disabled =
    pending || asteriskAway || !state || paused || !(config.pause_reasons || []).length;
  // One action at a time: "Ready" while paused, the reason and "Pause" otherwise.
  ready.hidden = !paused;
  pause.closest(".pause-group").hidden = paused;
  $("pause-reason").disabled = pending || paused;
  if (paused && state.reason && (config.pause_reasons || []).includes(state.reason)) {
    $("pause-reason").value = state.reason;
  }
  renderQueues();
}

async function send(url, body, what) {
  pending = true;
  render();
  status($("state-status"), what);
  const r = await post(url, body);
  pending = false;
  if (r.ok) {
    // Wait for Asterisk: the state comes back as `agent.state`.
    status($("state-status"), _("Waiting for Asterisk…"));
  } else {
    status($("state-status"), errorText(r), false);
  }
  render();
  return r;
}

export function pause() {
  const reason = $("pause-reason").value;
  return send("/api/me/pause", { paused: true, reason: reason }, _("Pausing…"));
}

export function ready() {
  return send("/api/me/pause", { paused: false, reason: "" }, _("Going ready…"));
}

export function toggle() {
  if (!state) return null;
  return isPaused() ? ready() : pause();
}

function setMember(queue, member) {
  const what = member ? _("Logging in to %(queue)s…", { queue: queue }) : _("Logging out of %(queue)s…", { queue: queue });
  return send("/api/me/queues/" + encodeURIComponent(queue), { member: member }, what);
}

// An `agent.state` message (or the state in the page's configuration).
export function update(next) {
  if (!next) return;
  if (next.extension && config.extension && next.extension !== config.extension) return;
  state = next;
  status($("state-status"), "");
  render();
}

// The two links, each honest about itself.
export function browserLink(kind, retryS) {
  const pill = $("ws-state");
  if (!pill) return;
  pill.dataset.state = kind;
  const text = {
    connecting: () => _("Centralita: connecting…"),
    open: () => _("Centralita: connected"),
    closed: () =>
      retryS ? _("Centralita: offline, retrying in %(seconds)s s", { seconds: retryS }) : _("Centralita: offline"),
  }[kind];
  pill.querySelector(".link-text").textContent = text ? text() : kind;
  pill.querySelector(".link-icon").textContent = { open: "●", connecting: "◌", closed: "✕" }[kind] || "";
  if (kind === "closed") asteriskLink(null); // unknown while we cannot hear from Centralita
}

export function asteriskLink(connected) {
  const pill = $("ami-state");
  if (!pill) return;
  const kind = connected === null ? "unknown" : connected ? "open" : "closed";
  pill.dataset.state = kind;
  if (asteriskAway !== (kind === "closed")) {
    asteriskAway = kind === "closed";
    render();
  }
  pill.querySelector(".link-text").textContent =
    kind === "open"
      ? _("Asterisk: connected")
      : kind === "closed"
        ? _("Asterisk: away, calls will not pop")
        : _("Asterisk: unknown");
  pill.querySelector(".link-icon").textContent = { open: "●", closed: "✕", unknown: "?" }[kind];
}

export function setup(initial) {
  config = initial || {};
  const select = $("pause-reason");
  clear(select);
  for (const reason of config.pause_reasons || []) {
    select.appendChild(element("option", { value: reason }, reason));
  }
  $("pause-button").addEventListener("click", pause);
  $("ready-button").addEventListener("click", ready);
  update(config.state);
  render();
  if (config.asterisk) asteriskLink(!!config.asterisk.connected);
  setInterval(renderSince, 1000);
}
