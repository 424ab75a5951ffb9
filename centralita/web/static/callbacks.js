// "My callbacks": the pending callback requests a supervisor assigned to this agent, with
// their count in the bar and the tab title. Calling one back goes through the server's
// click-to-dial (POST /api/callbacks/{id}/call), which stores the attempt and its result;
// closing it (done or cancelled) takes a note. The count moves live: the server sends
// `callbacks.changed` on /ws when a supervisor assigns or takes one away.
"use strict";
import { _, ngettext, shownDateTime } from "./i18n.js";
import { $, clear, element, errorText, post, request, show, status } from "./common.js";
import { setTitlePrefix } from "./alerts.js";

const RESULTS = {
  calling: () => _("calling…"),
  answered: () => _("answered"),
  no_answer: () => _("no answer"),
  busy: () => _("busy"),
  failed: () => _("failed"),
};
let loading = null;

function resultText(result) {
  return (RESULTS[result] || (() => result))();
}

function setCount(n) {
  for (const id of ["callbacks-count", "callbacks-panel-count"]) {
    const badge = $(id);
    if (badge) badge.textContent = String(n);
  }
  const link = $("callbacks-link");
  if (link) {
    link.dataset.count = String(n);
    link.title = ngettext("%(num)s callback to make", "%(num)s callbacks to make", n);
  }
  const panel = $("callbacks-panel-count");
  if (panel) panel.dataset.count = String(n);
  setTitlePrefix(n ? "(" + n + ") " : "");
}

function attemptItem(a) {
  return element(
    "li",
    { className: "attempt", dataset: { result: a.result } },
    element("span", { className: "tag", dataset: { result: a.result } }, resultText(a.result)),
    element("span", { className: "attempt-when" }, shownDateTime(a.started_at)),
    element("span", { className: "number attempt-number", dir: "ltr" }, a.number),
    // Asterisk's own words, when they say more than the result (which is translated).
    a.reason && a.reason !== a.result && a.reason !== a.result.replace("_", " ") ? element("span", { className: "attempt-reason muted" }, a.reason) : null,
  );
}

function callButton(cb, which) {
  const number = which === "alternative" ? cb.alternative : cb.number;
  const label = which === "alternative" ? _("Call the alternative") : _("Call back");
  return element(
    "button",
    {
      type: "button",
      className: "button call-back " + (which === "alternative" ? "" : "primary"),
      dataset: { callback: String(cb.id), which: which },
      "aria-label": label + " " + number,
    },
    element("span", { "aria-hidden": "true" }, "☎ "),
    label + " ",
    element("span", { className: "number", dir: "ltr" }, number),
  );
}

function item(cb) {
  const noteId = "callback-note-" + cb.id;
  const statusEl = element("p", { className: "inline-status callback-status", role: "status", "aria-live": "polite" });
  const attempts = element("ol", { className: "attempts" }, ...cb.attempts.map(attemptItem));
  const note = element("textarea", { id: noteId, name: "note", rows: 2, maxLength: 20000 });
  const close = (statusValue) => async () => {
    const r = await post("/api/callbacks/" + cb.id + "/close", { status: statusValue, note: note.value });
    if (r.ok) {
      status($("dial-status"), statusValue === "done" ? _("Callback %(id)s done.", { id: cb.id }) : _("Callback %(id)s cancelled.", { id: cb.id }), true);
      refresh();
    } else {
      status(statusEl, errorText(r), false);
    }
  };
  const done = element("button", { type: "button", className: "button small close-done" }, "✓ " + _("Done"));
  const cancel = element("button", { type: "button", className: "button small ghost danger close-cancel" }, _("Cancel it"));
  done.addEventListener("click", close("done"));
  cancel.addEventListener("click", close("cancelled"));
  const li = element(
    "li",
    { className: "callback-item", id: "my-callback-" + cb.id, dataset: { callback: String(cb.id) } },
    element(
      "div",
      { className: "callback-head" },
      element("span", { className: "callback-number number", dir: "ltr" }, cb.number),
      element(
        "ul",
        { className: "call-facts" },
        element("li", { className: "fact callback-when" }, _("Asked %(when)s", { when: shownDateTime(cb.created_at) })),
        cb.language ? element("li", { className: "fact callback-language" }, _("Language: %(language)s", { language: cb.language })) : null,
        cb.queue ? element("li", { className: "fact callback-queue" }, _("Queue: %(queue)s", { queue: cb.queue })) : null,
      ),
    ),
    element("div", { className: "actions callback-calls" }, callButton(cb, "number"), cb.alternative ? callButton(cb, "alternative") : null),
    statusEl,
    cb.attempts.length ? element("h3", { className: "attempts-title" }, _("Attempts")) : null,
    cb.attempts.length ? attempts : null,
    element(
      "div",
      { className: "callback-close" },
      element("label", { htmlFor: noteId }, _("Note")),
      note,
      element("div", { className: "actions" }, done, cancel),
    ),
  );
  return li;
}

function render(data) {
  const list = $("callbacks-list");
  // A note being typed survives the list being drawn again (an assignment came in).
  const notes = new Map();
  for (const box of list.querySelectorAll("textarea")) notes.set(box.id, box.value);
  clear(list);
  const callbacks = Array.isArray(data.callbacks) ? data.callbacks : [];
  for (const cb of callbacks) list.appendChild(item(cb));
  for (const box of list.querySelectorAll("textarea")) box.value = notes.get(box.id) || "";
  show($("callbacks-empty"), callbacks.length === 0);
  setCount(typeof data.pending === "number" ? data.pending : callbacks.length);
}

// One request at a time; a change arriving meanwhile asks again once it is done.
export async function refresh() {
  if (loading) {
    loading.again = true;
    return;
  }
  loading = { again: false };
  try {
    const r = await request("GET", "/api/callbacks/mine");
    if (r.ok) render(r.body);
  } finally {
    const again = loading.again;
    loading = null;
    if (again) refresh();
  }
}

async function callBack(button) {
  const id = button.dataset.callback;
  const li = button.closest(".callback-item");
  const statusEl = li ? li.querySelector(".callback-status") : null;
  const hide = $("dial-private");
  button.disabled = true;
  status(statusEl, _("Calling…"));
  const r = await post("/api/callbacks/" + id + "/call", { which: button.dataset.which, private: hide ? hide.checked : false });
  button.disabled = false;
  const attempt = r.body && r.body.attempt;
  if (attempt) {
    const text = _("Call to %(number)s: %(result)s", { number: attempt.number, result: resultText(attempt.result) });
    status($("dial-status"), text, attempt.result === "answered");
  } else {
    status($("dial-status"), errorText(r), false);
  }
  await refresh();
  // The list was drawn again: say how it went on the new item.
  const again = $("my-callback-" + id);
  const newStatus = again ? again.querySelector(".callback-status") : null;
  if (attempt) status(newStatus, resultText(attempt.result), attempt.result === "answered");
  else status(newStatus, errorText(r), false);
}

export function onMessage(msg) {
  if (msg.type === "callbacks.changed") {
    if (typeof msg.pending === "number") setCount(msg.pending);
    refresh();
  }
}

export function setup() {
  const list = $("callbacks-list");
  if (!list) return;
  list.addEventListener("click", (ev) => {
    const button = ev.target instanceof Element ? ev.target.closest(".call-back") : null;
    if (button && !button.disabled) callBack(button);
  });
  refresh();
}
