// The supervisors' wallboard: one WebSocket (/wallboard/ws) brings a snapshot of every queue
// and agent, then frames of changes (docs/supervisors.md); no polling. Times in a state tick here,
// from the server's clock. The agents' buttons call the supervisor API, and the page changes
// only when Asterisk's events come back through the socket.
// Names and reasons are other people's text: set with textContent only.
"use strict";
import { _ } from "./i18n.js";
import { $, clear, element, errorText, post, status } from "./common.js";

const config = JSON.parse(($("wb-config") || {}).textContent || "{}");
const reasons = config.pause_reasons || [];
const kiosk = !!config.kiosk;

const queues = new Map(); // name -> {data, node}
const agents = new Map(); // extension -> {data, row}
let offsetMs = 0; // server clock - this clock
let asterisk = false;

const STATE_TEXT = {
  free: () => _("Free"),
  ringing: () => _("Ringing"),
  on_call: () => _("On a call"),
  wrapup: () => _("Wrap-up"),
  paused: () => _("Paused"),
  logged_out: () => _("Logged out"),
  unavailable: () => _("Phone unavailable"),
};
const STATE_ICON = {
  free: "●",
  ringing: "◔",
  on_call: "☎",
  wrapup: "✎",
  paused: "❚❚",
  logged_out: "○",
  unavailable: "⚠",
};
// The supervisor API's error codes, besides those common.js knows.
const ERRORS = {
  no_call: () => _("This agent has no call to listen to."),
  unknown_agent: () => _("There is no such agent."),
  not_supervisor: () => _("Only supervisors may do this."),
  own_call: () => _("You cannot listen to your own calls."),
  no_phone: () => _("Your phone is not registered: it cannot ring."),
  not_answered: () => _("Your phone did not answer."),
  no_queue_calls: () => _("This agent's role takes no queue calls."),
};
const me = ($("me") || { dataset: {} }).dataset.extension || "";

const nowS = () => (Date.now() + offsetMs) / 1000;

function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

// ---------------------------------------------------------------- queues

function queueLevel(q, now) {
  // Red: a caller has waited beyond the service level, or the level is under 60 %.
  // Amber: half of it, callers with no free agent, or a level under 80 %.
  const waited = q.longest_wait_since === null ? 0 : now - q.longest_wait_since;
  const sl = q.service_level_pct;
  if (waited >= q.service_level_s || (sl !== null && sl < 60)) return "alert";
  if (waited >= q.service_level_s / 2 || (q.waiting > 0 && q.free === 0) || (sl !== null && sl < 80))
    return "warn";
  return "ok";
}

function figure(className, label) {
  const value = element("span", { className: "wb-value " + className });
  return element("div", { className: "wb-figure" }, value, element("span", { className: "wb-label" }, label));
}

function queueNode(name) {
  const title = element("h3", { className: "wb-queue-name" }, name);
  const counts = element("ul", { className: "wb-counts" });
  const today = element("p", { className: "wb-today" });
  return element(
    "li",
    { className: "wb-queue", dataset: { queue: name, level: "ok" } },
    title,
    element(
      "div",
      { className: "wb-figures" },
      figure("wb-waiting", _("waiting")),
      figure("wb-longest", _("longest wait")),
      figure("wb-sl", ""),
    ),
    counts,
    today,
  );
}

function count(kind, n, label, extra) {
  return element(
    "li",
    { className: "wb-count", dataset: { kind: kind, zero: String(n === 0) } },
    element("span", { className: "wb-count-n" }, String(n)),
    " ",
    label,
    extra ? element("span", { className: "wb-reasons" }, " " + extra) : null,
  );
}

function renderQueue(q) {
  let entry = queues.get(q.name);
  if (!entry) {
    entry = { data: q, node: queueNode(q.name) };
    queues.set(q.name, entry);
    $("wb-queues").appendChild(entry.node);
  }
  entry.data = q;
  const node = entry.node;
  node.querySelector(".wb-waiting").textContent = String(q.waiting);
  node.querySelector(".wb-sl").textContent = q.service_level_pct === null ? "–" : Math.round(q.service_level_pct) + "%";
  node.querySelector(".wb-sl + .wb-label").textContent = _("answered within %(seconds)s s", {
    seconds: q.service_level_s,
  });
  const counts = node.querySelector(".wb-counts");
  clear(counts);
  const why = Object.entries(q.paused_reasons || {})
    .map(([reason, n]) => (reason || _("no reason")) + (n > 1 ? " ×" + n : ""))
    .join(", ");
  counts.append(
    count("free", q.free, _("free")),
    count("on_call", q.on_call, _("on a call")),
    count("ringing", q.ringing, _("ringing")),
    count("wrapup", q.wrapup, _("wrap-up")),
    count("paused", q.paused, _("paused"), why ? "(" + why + ")" : ""),
    count("logged_in", q.logged_in, _("logged in")),
  );
  node.querySelector(".wb-today").textContent = _("Today: %(answered)s answered, %(abandoned)s abandoned", {
    answered: q.answered_today,
    abandoned: q.abandoned_today,
  });
  tickQueue(entry, nowS());
}

function tickQueue(entry, now) {
  const q = entry.data;
  const longest = entry.node.querySelector(".wb-longest");
  longest.textContent = q.longest_wait_since === null ? "–" : duration(now - q.longest_wait_since);
  entry.node.dataset.level = asterisk ? queueLevel(q, now) : "unknown";
  entry.node.dataset.waiting = String(q.waiting > 0);
}

// ---------------------------------------------------------------- agents

function stateText(a) {
  const text = STATE_TEXT[a.state] ? STATE_TEXT[a.state]() : a.state;
  return a.state === "paused" && a.reason ? text + ": " + a.reason : text;
}

async function act(a, url, body, done, pending) {
  const el = $("wb-status");
  status(el, pending || _("Sending to Asterisk…"));
  const r = await post(url, body);
  if (r.ok) {
    status(el, done, true);
    return;
  }
  const code = r.body && r.body.code;
  const why = code && ERRORS[code] ? ERRORS[code]() : errorText(r, _("The action failed (HTTP %(status)s).", { status: r.status }));
  status(el, _("%(agent)s: %(error)s", { agent: a.name, error: why }), false);
}

const agentUrl = (a) => "/api/supervisor/agents/" + encodeURIComponent(a.extension);

function actionCell(ext) {
  const pick = element(
    "select",
    { className: "wb-reason", "aria-label": _("Pause reason") },
    ...reasons.map((r) => element("option", { value: r }, r)),
  );
  const pause = element("button", { type: "button", className: "button small wb-pause" });
  pause.addEventListener("click", () => {
    const a = agents.get(ext).data;
    if (a.state === "paused") {
      act(a, agentUrl(a) + "/pause", { paused: false, reason: "" }, _("%(agent)s: unpause sent.", { agent: a.name }));
    } else {
      act(a, agentUrl(a) + "/pause", { paused: true, reason: pick.value }, _("%(agent)s: pause sent.", { agent: a.name }));
    }
  });
  const spies = [
    ["listen", _("Listen")],
    ["whisper", _("Whisper")],
    ["barge", _("Barge")],
  ].map(([mode, label]) => {
    const button = element("button", { type: "button", className: "button small wb-spy", dataset: { mode: mode } }, label);
    button.addEventListener("click", () => {
      const a = agents.get(ext).data;
      act(
        a,
        agentUrl(a) + "/spy",
        { mode: mode },
        _("%(mode)s: you are on %(agent)s's call.", { mode: label, agent: a.name }),
        _("Your phone rings: pick it up to join %(agent)s's call (%(mode)s).", { mode: label, agent: a.name }),
      );
    });
    return button;
  });
  return element(
    "td",
    { className: "wb-actions" },
    element("div", { className: "wb-action-group" }, pick, pause),
    element("div", { className: "wb-action-group", role: "group", "aria-label": _("Listen in") }, ...spies),
  );
}

function agentRow(a) {
  const ext = a.extension;
  const row = element(
    "tr",
    { dataset: { extension: ext } },
    element(
      "th",
      { scope: "row" },
      element("span", { className: "wb-agent-name" }, a.name),
      " ",
      element("span", { className: "wb-ext" }, ext),
    ),
    element("td", {}, element("span", { className: "wb-state" })),
    element("td", { className: "wb-time num" }),
    element("td", {}, element("div", { className: "wb-chips" })),
  );
  if (!kiosk) row.appendChild(actionCell(ext));
  return row;
}

function queueChip(a, q) {
  const label = q.queue + (q.paused ? " ❚❚" : "");
  const props = {
    className: "wb-chip",
    dataset: { queue: q.queue, member: String(q.logged_in), paused: String(q.paused) },
  };
  if (kiosk || q.static) {
    props.title = q.static ? _("Always in this queue (configuration)") : "";
    return element("span", props, label);
  }
  props.type = "button";
  props["aria-pressed"] = String(q.logged_in);
  props.title = q.logged_in ? _("Log %(agent)s out of %(queue)s", { agent: a.name, queue: q.queue }) : _("Log %(agent)s in to %(queue)s", { agent: a.name, queue: q.queue });
  const chip = element("button", props, label);
  chip.addEventListener("click", () => {
    const current = agents.get(a.extension).data;
    const mine = current.queues.find((x) => x.queue === q.queue);
    const login = !(mine && mine.logged_in);
    act(
      current,
      agentUrl(current) + "/queues/" + encodeURIComponent(q.queue),
      { logged_in: login },
      login
        ? _("%(agent)s: log in to %(queue)s sent.", { agent: current.name, queue: q.queue })
        : _("%(agent)s: log out of %(queue)s sent.", { agent: current.name, queue: q.queue }),
    );
  });
  return chip;
}

function renderAgent(a) {
  let entry = agents.get(a.extension);
  if (!entry) {
    entry = { data: a, row: agentRow(a) };
    agents.set(a.extension, entry);
    $("wb-agents").appendChild(entry.row);
  }
  entry.data = a;
  const row = entry.row;
  row.dataset.state = a.state;
  const badge = row.querySelector(".wb-state");
  badge.dataset.state = a.state;
  clear(badge);
  badge.append(element("span", { className: "wb-icon", "aria-hidden": "true" }, STATE_ICON[a.state] || ""), " " + stateText(a));
  const chips = row.querySelector(".wb-chips");
  clear(chips);
  for (const q of a.queues) chips.appendChild(queueChip(a, q));
  if (!kiosk) {
    const pause = row.querySelector(".wb-pause");
    const paused = a.state === "paused";
    pause.textContent = paused ? _("Unpause") : _("Pause");
    pause.dataset.paused = String(paused);
    const inQueue = a.queues.some((q) => q.logged_in);
    pause.disabled = !asterisk || !inQueue;
    row.querySelector(".wb-reason").hidden = paused;
    for (const spy of row.querySelectorAll(".wb-spy")) spy.disabled = !asterisk || a.state !== "on_call" || a.extension === me;
  }
  tickAgent(entry, nowS());
}

function tickAgent(entry, now) {
  entry.row.querySelector(".wb-time").textContent = duration(now - entry.data.since);
}

function agentCounts() {
  const tally = {};
  for (const { data } of agents.values()) tally[data.state] = (tally[data.state] || 0) + 1;
  const parts = ["free", "on_call", "ringing", "wrapup", "paused"]
    .filter((s) => tally[s])
    .map((s) => STATE_TEXT[s]() + " " + tally[s]);
  $("wb-agent-counts").textContent = parts.join(" · ");
}

// ---------------------------------------------------------------- the socket

function setLink(state, text) {
  const el = $("wb-link");
  el.dataset.state = state;
  el.textContent = text;
  document.body.dataset.asterisk = String(asterisk);
}

// A snapshot is the whole board: a row it does not have is gone (the config changed, while
// this page was open or before it reconnected), and its order is the config's.
function keepOnly(entries, keys, nodeOf) {
  const wanted = new Set(keys);
  for (const [key, entry] of entries) {
    if (!wanted.has(key)) {
      nodeOf(entry).remove();
      entries.delete(key);
    }
  }
}

function apply(msg) {
  if (msg.type === "wallboard.snapshot") {
    offsetMs = msg.now * 1000 - Date.now();
    asterisk = !!msg.asterisk;
    setLink(asterisk ? "live" : "away", asterisk ? _("Live") : _("Asterisk is away: figures may be stale"));
    keepOnly(queues, msg.queues.map((q) => q.name), (entry) => entry.node);
    keepOnly(agents, msg.agents.map((a) => a.extension), (entry) => entry.row);
    for (const q of msg.queues) renderQueue(q);
    for (const a of msg.agents) renderAgent(a);
    $("wb-queues").append(...msg.queues.map((q) => queues.get(q.name).node));
    $("wb-agents").append(...msg.agents.map((a) => agents.get(a.extension).row));
    agentCounts();
    document.body.dataset.ready = "true";
  } else if (msg.type === "wallboard.queue") {
    renderQueue(msg.queue);
  } else if (msg.type === "wallboard.agent") {
    renderAgent(msg.agent);
    agentCounts();
  }
}

let delay = 1000;
function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/wallboard/ws");
  ws.addEventListener("open", () => {
    delay = 1000;
  });
  ws.addEventListener("message", (ev) => {
    // The snapshot on connect is one message; every frame after it, an array of them.
    let data;
    try {
      data = JSON.parse(ev.data);
    } catch (err) {
      console.error("wallboard frame", err);
      return;
    }
    for (const msg of Array.isArray(data) ? data : [data]) {
      try {
        apply(msg);
      } catch (err) {
        console.error("wallboard message", err);
      }
    }
  });
  ws.addEventListener("close", (ev) => {
    if (ev.code === 4401 || ev.code === 1008) {
      setLink("closed", _("Logged out: reload the page to log in again."));
      return;
    }
    setLink("connecting", _("Reconnecting…"));
    setTimeout(connect, delay);
    delay = Math.min(delay * 2, 15000);
  });
}

// ---------------------------------------------------------------- the wall screen

const clock = $("wb-clock");
function tick() {
  const now = nowS();
  for (const entry of queues.values()) tickQueue(entry, now);
  for (const entry of agents.values()) tickAgent(entry, now);
  const date = new Date(now * 1000);
  clock.textContent = date.toLocaleTimeString(document.documentElement.lang === "ar" ? "ar-u-nu-latn" : document.documentElement.lang, {
    hour: "2-digit",
    minute: "2-digit",
  });
  clock.dateTime = date.toISOString();
}

const full = $("wb-fullscreen");
if (!document.fullscreenEnabled) full.hidden = true;
full.addEventListener("click", async () => {
  try {
    if (document.fullscreenElement) await document.exitFullscreen();
    else await document.documentElement.requestFullscreen();
  } catch (err) {
    status($("wb-status"), _("Full screen is not available here."), false);
  }
});
document.addEventListener("fullscreenchange", () => {
  const on = !!document.fullscreenElement;
  full.setAttribute("aria-pressed", String(on));
  full.textContent = on ? _("Leave full screen") : _("Full screen");
  document.body.classList.toggle("fullscreen", on);
});

tick();
setInterval(tick, 1000);
connect();
