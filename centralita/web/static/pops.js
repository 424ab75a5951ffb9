// The screen pops: one per call on the agent's screen (a call waiting, a transfer...), each
// with its contact, the caller's history and a wrap-up form. A pop and its unsaved form are
// kept in localStorage (centralita.wrapup.<extension>.<call_id>) until the outcome is saved
// or the pop dismissed, so neither a second call nor a reload loses them.
"use strict";
import { _, clock, language, shownDateTime } from "./i18n.js";
import { $, clear, dialButton, element, errorText, post, request, show, status } from "./common.js";
import * as alerts from "./alerts.js";

const KEEP_MS = 12 * 3600 * 1000; // a forgotten pop leaves the browser after this
const pops = new Map(); // call_id -> pop
let selected = null; // the call_id shown
let extension = "";
const popEl = $("pop");
const form = $("outcome-form");
const languageNames = (() => {
  try {
    return new Intl.DisplayNames([language], { type: "language" });
  } catch (err) {
    return null;
  }
})();

const STATE_TEXT = { ringing: () => _("Ringing"), answered: () => _("On call"), ended: () => _("Ended") };
const STATE_ICON = { ringing: "☎", answered: "●", ended: "■" };

function storageKey(callId) {
  return "centralita.wrapup." + extension + "." + callId;
}

function persist(pop) {
  if (pop.saved) {
    localStorage.removeItem(storageKey(pop.id));
    return;
  }
  const kept = {
    msg: pop.msg,
    kind: pop.kind,
    draft: pop.draft,
    dirty: pop.dirty,
    contact: pop.contact,
    view: pop.view,
    firstSeen: pop.firstSeen,
    endedSeen: pop.endedSeen,
    answeredSeen: pop.answeredSeen,
    storedAt: Date.now(),
  };
  try {
    localStorage.setItem(storageKey(pop.id), JSON.stringify(kept));
  } catch (err) {
    // Storage full or refused (private mode): the pop still works, without the reload net.
  }
}

function forgetStored(callId) {
  localStorage.removeItem(storageKey(callId));
}

function restore() {
  const prefix = storageKey("");
  for (let i = localStorage.length - 1; i >= 0; i--) {
    const key = localStorage.key(i);
    if (!key || !key.startsWith(prefix)) continue;
    let kept;
    try {
      kept = JSON.parse(localStorage.getItem(key));
    } catch (err) {
      kept = null;
    }
    if (!kept || !kept.msg || Date.now() - (kept.storedAt || 0) > KEEP_MS) {
      localStorage.removeItem(key);
      continue;
    }
    const pop = newPop(kept.msg);
    Object.assign(pop, {
      kind: kept.kind || pop.kind,
      draft: kept.draft || pop.draft,
      dirty: !!kept.dirty,
      contact: kept.contact || null,
      view: kept.view || pop.view,
      firstSeen: kept.firstSeen || pop.firstSeen,
      endedSeen: kept.endedSeen || null,
      answeredSeen: kept.answeredSeen || null,
      // Until the server speaks of it again, a restored pop's call may have ended meanwhile.
      stale: (kept.kind || pop.kind) !== "ended",
    });
    pops.set(pop.id, pop);
  }
}

function newPop(msg) {
  const isPrivate = !!msg.private || !msg.number;
  const contacts = msg.contacts || [];
  return {
    id: msg.call_id,
    msg: msg,
    kind: msg.type ? msg.type.slice(5) : "ringing",
    private: isPrivate,
    contact: contacts.length === 1 ? contacts[0] : null,
    view: contacts.length === 1 ? "contact" : contacts.length > 1 ? "choose" : "unknown",
    draft: { outcome: "", notes: "", follow_up: "" },
    dirty: false,
    saved: false,
    firstSeen: Date.now() / 1000,
    answeredSeen: null,
    endedSeen: null,
  };
}

// A phone number inside text of either direction: kept left to right (Unicode isolates), so
// "+34…" is not turned into "…34+" in an Arabic sentence.
export function isolated(number) {
  return "\u2066" + number + "\u2069";
}

function callerText(pop) {
  const m = pop.msg;
  const number = m.number ? isolated(m.number) : "";
  const name = pop.contact ? pop.contact.name : m.name;
  if (name) return name + (number ? " · " + number : "");
  return number || _("private number");
}

// ---------------------------------------------------------------- timer
function timerText(pop) {
  const m = pop.msg;
  const now = Date.now() / 1000;
  const started = m.started_at || pop.firstSeen;
  if (pop.kind === "ringing") return clock(now - started);
  const answered = m.answered_at || pop.answeredSeen;
  if (pop.kind === "answered") return clock(now - (answered || started));
  const ended = m.ended_at || pop.endedSeen || now;
  return answered ? _("talked %(time)s", { time: clock(ended - answered) }) : "";
}

function tick() {
  for (const pop of pops.values()) {
    const tab = document.querySelector('.pop-tab[data-call-id="' + CSS.escape(pop.id) + '"] .tab-timer');
    if (tab) tab.textContent = timerText(pop);
  }
  const pop = pops.get(selected);
  if (pop) $("pop-timer").textContent = timerText(pop);
}

// ---------------------------------------------------------------- tabs
function renderTabs() {
  const tabs = $("pop-tabs");
  clear(tabs);
  const list = Array.from(pops.values());
  tabs.hidden = list.length < 1;
  for (const pop of list) {
    const tab = element(
      "button",
      {
        type: "button",
        className: "pop-tab",
        role: "tab",
        id: "tab-" + pop.id,
        dataset: { callId: pop.id, state: pop.kind, dirty: String(pop.dirty), saved: String(pop.saved) },
        "aria-selected": String(pop.id === selected),
        "aria-controls": "pop",
        tabIndex: pop.id === selected ? 0 : -1,
      },
      element("span", { className: "tab-icon", "aria-hidden": "true" }, STATE_ICON[pop.kind] || ""),
      element(
        "span",
        { className: "tab-body" },
        element("span", { className: "tab-caller" }, callerText(pop)),
        element(
          "span",
          { className: "tab-meta" },
          element("span", { className: "tab-state" }, (STATE_TEXT[pop.kind] || (() => pop.kind))()),
          element("span", { className: "tab-timer" }, timerText(pop)),
        ),
      ),
      pop.saved
        ? element("span", { className: "tab-flag saved" }, "✓ " + _("saved"))
        : pop.dirty
          ? element("span", { className: "tab-flag draft" }, "✎ " + _("unsaved"))
          : null,
    );
    tab.addEventListener("click", () => select(pop.id));
    tab.addEventListener("keydown", (ev) => {
      if (ev.key !== "ArrowRight" && ev.key !== "ArrowLeft") return;
      const forward = (ev.key === "ArrowRight") !== (document.dir === "rtl");
      next(forward ? 1 : -1, true);
      ev.preventDefault();
    });
    tabs.appendChild(tab);
  }
}

export function next(step, focusTab) {
  const ids = Array.from(pops.keys());
  if (!ids.length) return;
  const at = ids.indexOf(selected);
  const id = ids[(at + (step || 1) + ids.length) % ids.length];
  select(id);
  if (focusTab) {
    const tab = $("tab-" + id);
    if (tab) tab.focus();
  }
}

// ---------------------------------------------------------------- the selected pop
function showContact(pop, c) {
  pop.contact = c;
  pop.view = "contact";
  persist(pop);
  if (pop.id === selected) renderContact(pop);
  renderTabs();
}

function renderContact(pop) {
  const view = pop.view;
  show($("pop-contact"), view === "contact" && !!pop.contact);
  show($("pop-choose"), view === "choose");
  show($("pop-unknown"), view === "unknown");
  if (pop.contact) {
    const c = pop.contact;
    popEl.dataset.contactId = String(c.id);
    $("contact-name").textContent = c.name;
    $("contact-company").textContent = c.company || "";
    const numbers = $("contact-numbers");
    clear(numbers);
    for (const n of c.numbers || []) numbers.appendChild(dialButton(n));
    $("contact-notes").textContent = c.notes || "";
    const url = $("contact-url");
    if (c.url && /^https?:\/\//i.test(c.url)) {
      url.href = c.url;
      show(url, true);
    } else {
      show(url, false);
    }
  } else {
    delete popEl.dataset.contactId;
  }
  if (view === "choose") {
    const list = $("choose-list");
    clear(list);
    for (const c of pop.msg.contacts || []) {
      const b = element(
        "button",
        { type: "button", className: "choose-contact button ghost", dataset: { contactId: String(c.id) } },
        c.company ? c.name + " (" + c.company + ")" : c.name,
      );
      b.addEventListener("click", () => showContact(pop, c));
      list.appendChild(element("li", {}, b));
    }
  }
  if (view === "unknown") {
    $("unknown-text").textContent = pop.private
      ? _("Private number: search the caller by name.")
      : _("Unknown number: save it as a new contact, link it to one, or ignore it.");
    $("search-title").textContent = pop.private ? _("Search by name") : _("Link to an existing contact");
    show($("new-contact-form"), !pop.private);
  }
}

function fact(el, text) {
  el.textContent = text;
  show(el, !!text);
}

function renderHistory(pop) {
  const m = pop.msg;
  const list = $("history-list");
  clear(list);
  const history = Array.isArray(m.history) ? m.history : [];
  for (const h of history) {
    const when = shownDateTime(h.start);
    const who = h.agent_name ? h.agent_name + " (" + h.agent + ")" : h.agent || "";
    const outcome = h.outcome
      ? element("span", { className: "tag outcome-tag" }, h.outcome)
      : element("span", { className: "tag tag-empty" }, _("no outcome"));
    const notes =
      h.notes === null
        ? element("p", { className: "history-notes muted" }, _("Notes are private to the agent who took the call."))
        : h.notes
          ? element("p", { className: "history-notes" }, h.notes)
          : null;
    list.appendChild(
      element(
        "li",
        { className: "history-item", dataset: { direction: h.direction || "" } },
        element(
          "div",
          { className: "history-head" },
          element("span", { className: "history-dir", "aria-hidden": "true" }, h.direction === "out" ? "↗" : "↙"),
          element("span", { className: "history-when" }, when),
          element("span", { className: "history-agent" }, who),
          element("span", { className: "history-duration" }, h.duration ? clock(h.duration) : ""),
          outcome,
        ),
        notes,
      ),
    );
  }
  show($("history-empty"), history.length === 0);
  show(list, history.length > 0);
  const all = $("history-all");
  if (m.history_url && m.history_url.startsWith("/")) {
    all.href = m.history_url;
    show(all, true);
  } else {
    show(all, false);
  }
  const note = $("pop-callback");
  clear(note);
  const cb = m.callback;
  if (cb && cb.number) {
    note.appendChild(element("strong", {}, "↺ " + _("Pending callback request")));
    note.appendChild(
      element("span", {}, " " + _("asked %(when)s:", { when: shownDateTime(cb.requested_at) }) + " "),
    );
    note.appendChild(dialButton(cb.number));
    if (cb.alt_number) {
      note.appendChild(element("span", {}, " " + _("or") + " "));
      note.appendChild(dialButton(cb.alt_number));
    }
    show(note, true);
  } else {
    show(note, false);
  }
}

function fillForm(pop) {
  $("outcome").value = pop.draft.outcome || "";
  $("outcome-notes").value = pop.draft.notes || "";
  $("follow-up").value = pop.draft.follow_up || "";
  status($("outcome-status"), pop.saved ? _("Saved.") : "", pop.saved ? true : undefined);
  show($("draft-note"), pop.dirty && !pop.saved);
}

function renderSelected() {
  const pop = pops.get(selected);
  if (!pop) {
    show(popEl, false);
    show($("idle"), true);
    delete popEl.dataset.callId;
    return;
  }
  const m = pop.msg;
  popEl.dataset.callId = pop.id;
  popEl.dataset.state = pop.kind;
  popEl.setAttribute("aria-labelledby", "tab-" + pop.id);
  const state = $("pop-state");
  state.textContent = (STATE_TEXT[pop.kind] || (() => pop.kind))();
  state.dataset.icon = STATE_ICON[pop.kind] || "";
  $("pop-direction").textContent = m.direction === "out" ? _("Outgoing to") : _("Incoming from");
  const num = $("pop-number");
  num.textContent = m.number || _("private number");
  num.dataset.number = m.number || "";
  num.disabled = pop.private;
  $("pop-name").textContent = m.name || "";
  fact($("pop-queue"), m.queue ? _("queue %(name)s", { name: m.queue }) : "");
  fact($("pop-customer-id"), m.customer_id ? _("customer ID %(id)s", { id: m.customer_id }) : "");
  let lang = "";
  if (m.language) {
    let name = m.language;
    try {
      name = (languageNames && languageNames.of(m.language)) || m.language;
    } catch (err) {
      name = m.language;
    }
    lang = _("IVR language: %(language)s", { language: name });
  }
  fact($("pop-language"), lang);
  const crm = $("pop-crm");
  if (m.crm_url && /^https?:\/\//i.test(m.crm_url)) {
    crm.href = m.crm_url;
    show(crm, true);
  } else {
    show(crm, false);
  }
  renderContact(pop);
  renderHistory(pop);
  fillForm(pop);
  $("pop-timer").textContent = timerText(pop);
  show($("idle"), false);
  show(popEl, true);
}

export function select(callId) {
  if (!pops.has(callId)) return;
  selected = callId;
  renderTabs();
  renderSelected();
}

// ---------------------------------------------------------------- messages
function settleAlerts(pop) {
  if (pop.kind === "ringing") alerts.ring(pop.id, callerText(pop));
  else alerts.silence(pop.id);
}

// True while the agent is busy with a pop: talking on its call, or writing its wrap-up. A
// new call does not take the screen from such a pop; its tab rings beside it.
function busyWith(pop) {
  if (!pop || pop.saved) return false;
  return pop.kind === "answered" || pop.dirty || form.contains(document.activeElement);
}

export function onMessage(msg) {
  const kind = msg.type.slice(5);
  let pop = pops.get(msg.call_id);
  if (!pop) {
    if (kind === "ended") return; // the end of a call this screen never showed
    for (const old of Array.from(pops.values())) {
      if (old.saved && old.id !== selected) pops.delete(old.id);
    }
    pop = newPop(msg);
    pops.set(pop.id, pop);
    if (!busyWith(pops.get(selected))) selected = pop.id;
  } else {
    // Keep what the first message brought (history, contacts) when a later one lacks it.
    const merged = Object.assign({}, pop.msg, msg);
    for (const key of ["history", "callback", "history_url", "language", "started_at", "answered_at"]) {
      if ((msg[key] === undefined || msg[key] === null) && pop.msg[key] !== undefined) merged[key] = pop.msg[key];
    }
    pop.msg = merged;
    pop.kind = kind;
    pop.stale = false;
  }
  if (kind === "answered" && !pop.answeredSeen) pop.answeredSeen = Date.now() / 1000;
  if (kind === "ended" && !pop.endedSeen) pop.endedSeen = Date.now() / 1000;
  persist(pop);
  settleAlerts(pop);
  renderTabs();
  if (pop.id === selected) renderSelected();
}

// ---------------------------------------------------------------- the forms
function readDraft(pop) {
  pop.draft = {
    outcome: $("outcome").value,
    notes: $("outcome-notes").value,
    follow_up: $("follow-up").value,
  };
  pop.dirty = !!(pop.draft.outcome || pop.draft.notes || pop.draft.follow_up);
  pop.saved = false;
  persist(pop);
  show($("draft-note"), pop.dirty);
  status($("outcome-status"), "");
}

export async function saveOutcome() {
  const pop = pops.get(selected);
  if (!pop) return;
  readDraft(pop);
  if (!pop.draft.outcome) {
    status($("outcome-status"), _("Choose an outcome first."), false);
    $("outcome").focus();
    return;
  }
  const r = await post("/api/outcomes", {
    call_id: pop.id,
    uniqueid: pop.msg.uniqueid || "",
    outcome: pop.draft.outcome,
    notes: pop.draft.notes,
    follow_up: pop.draft.follow_up,
    contact_id: pop.contact ? String(pop.contact.id) : "",
  });
  if (r.ok) {
    pop.saved = true;
    pop.dirty = false;
    forgetStored(pop.id);
    if (pop.id === selected) {
      status($("outcome-status"), _("Saved."), true);
      show($("draft-note"), false);
    }
  } else if (pop.id === selected) {
    status($("outcome-status"), errorText(r, _("Could not save.")), false);
  }
  renderTabs();
}

async function dismiss() {
  const pop = pops.get(selected);
  if (!pop) return;
  await post("/api/pops/dismiss", { call_id: pop.id });
  alerts.silence(pop.id);
  forgetStored(pop.id);
  pops.delete(pop.id);
  const rest = Array.from(pops.keys());
  selected = rest.length ? rest[rest.length - 1] : null;
  renderTabs();
  renderSelected();
}

function wireForms() {
  form.addEventListener("input", () => {
    const pop = pops.get(selected);
    if (pop) {
      const wasDirty = pop.dirty;
      readDraft(pop);
      if (wasDirty !== pop.dirty) renderTabs();
    }
  });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    saveOutcome();
  });
  form.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      saveOutcome();
    }
  });
  $("pop-dismiss").addEventListener("click", dismiss);
  $("outcome-dismiss").addEventListener("click", dismiss);

  $("new-contact-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const pop = pops.get(selected);
    if (!pop) return;
    const r = await post("/api/contacts", {
      name: $("new-name").value,
      company: $("new-company").value,
      notes: $("new-notes").value,
      number: pop.private ? "" : pop.msg.number,
    });
    if (r.ok) {
      $("new-contact-form").reset();
      showContact(pop, r.body.contact);
    } else status($("outcome-status"), errorText(r, _("Could not save the contact.")), false);
  });

  $("search-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const pop = pops.get(selected);
    const q = $("search-q").value.trim();
    if (!pop || !q) return;
    const r = await request("GET", "/api/contacts?q=" + encodeURIComponent(q));
    const list = $("search-results");
    clear(list);
    for (const c of (r.ok && r.body.contacts) || []) {
      const label = pop.private ? _("This is %(name)s", { name: c.name }) : _("Link to %(name)s", { name: c.name });
      const b = element(
        "button",
        { type: "button", className: "link-contact button ghost", dataset: { contactId: String(c.id) } },
        label,
      );
      b.addEventListener("click", async () => {
        if (pop.private) {
          showContact(pop, c);
          return;
        }
        const linked = await post("/api/contacts/" + c.id + "/numbers", { number: pop.msg.number });
        if (linked.ok) showContact(pop, linked.body.contact);
        else status($("outcome-status"), errorText(linked, _("Could not link the number.")), false);
      });
      list.appendChild(element("li", {}, b));
    }
    if (!list.firstChild) list.appendChild(element("li", { className: "muted" }, _("No contact with that name.")));
  });

  $("ignore-unknown").addEventListener("click", () => {
    const pop = pops.get(selected);
    if (!pop) return;
    pop.view = "ignored";
    persist(pop);
    renderContact(pop);
  });
}

export function setup(ext) {
  extension = ext;
  restore();
  wireForms();
  const ids = Array.from(pops.keys());
  if (ids.length) selected = ids[ids.length - 1];
  renderTabs();
  renderSelected();
  setInterval(tick, 1000);
}

// The socket closed: until the server resends them, the calls on screen may end unseen.
export function markStale() {
  for (const pop of pops.values()) if (pop.kind !== "ended") pop.stale = true;
}

// After the socket (re)connected and the server resent the calls still open: a pop kept in
// the browser whose call the server no longer has is over (it ended while the page was away).
export function settleStale() {
  for (const pop of pops.values()) {
    if (!pop.stale) continue;
    pop.stale = false;
    pop.kind = "ended";
    if (!pop.endedSeen) pop.endedSeen = Date.now() / 1000;
    alerts.silence(pop.id);
    persist(pop);
  }
  renderTabs();
  renderSelected();
}
