// What every console page shares: JSON requests with the CSRF token, status lines,
// click-to-dial on any .dial button, and the language menu.
// Text from calls (names, numbers, notes) is a stranger's: it is only ever set with
// textContent, never as HTML.
"use strict";
import { _, language } from "./i18n.js";

const meta = document.querySelector('meta[name="csrf-token"]');
const csrf = meta ? meta.content : "";
export const $ = (id) => document.getElementById(id);

export async function request(method, url, data) {
  const init = {
    method: method,
    credentials: "same-origin",
    headers: { Accept: "application/json", "X-CSRF-Token": csrf },
  };
  if (data !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(data);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    return { ok: false, status: 0, body: { error: _("Centralita cannot be reached.") } };
  }
  let body = {};
  try {
    body = await response.json();
  } catch (err) {
    body = {};
  }
  return { ok: response.ok, status: response.status, body: body };
}
export const post = (url, data) => request("POST", url, data);

// The server's errors are in English with a stable code: known codes are shown translated.
const ERRORS = {
  bad_reason: () => _("Choose a pause reason from the list."),
  bad_number: () => _("This is not a phone number."),
  bad_outcome: () => _("Choose an outcome from the list."),
  required: () => _("This field is required."),
  not_member: () => _("You are not in that queue."),
  already_member: () => _("You are already in that queue."),
  static_member: () => _("You are always in that queue: only the configuration can change it."),
  queue_not_allowed: () => _("You may not join that queue."),
  unknown_queue: () => _("There is no such queue."),
  ami_down: () => _("Asterisk is not connected: try again in a moment."),
  ami_timeout: () => _("Asterisk did not answer: try again."),
  bad_preference: () => _("That setting cannot be saved."),
  callback_closed: () => _("This callback is already closed."),
  unknown_callback: () => _("This callback is not yours, or no longer exists."),
  busy: () => _("You are already on a call."),
};
export function errorText(r, fallback) {
  const body = r.body || {};
  // In English the server's own message says the most; in another language, its code's.
  if (language === "en" && body.error) return body.error;
  if (body.code && ERRORS[body.code]) return ERRORS[body.code]();
  if (r.status === 503) return ERRORS.ami_down();
  if (r.status === 0) return _("Centralita cannot be reached.");
  return body.error || body.message || fallback || "HTTP " + r.status;
}

export function status(el, text, ok) {
  if (!el) return;
  el.textContent = text;
  el.dataset.ok = ok === undefined ? "" : String(ok);
}

export function show(el, visible) {
  if (el) el.hidden = !visible;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
}

// element("li", {className: "x", dataset: {a: "1"}}, "text", child): a node, its text safe.
export function element(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined || child === "") continue;
    node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

export function dialButton(number) {
  return element("button", { type: "button", className: "dial number", dataset: { number: number } }, number);
}

// ---------------------------------------------------------------- click-to-dial
const dialListeners = [];
export function onDialed(listener) {
  dialListeners.push(listener);
}

export async function dial(number, hidden) {
  const el = $("dial-status");
  status(el, _("Calling %(number)s…", { number: number }));
  const r = await post("/api/dial", { number: number, private: !!hidden });
  const shownNumber = (r.body && r.body.number) || number;
  if (r.ok) {
    const result = r.body.reason_text || r.body.response || "";
    status(el, _("Call to %(number)s: %(result)s", { number: number, result: result }), true);
    for (const listener of dialListeners) listener(shownNumber);
  } else {
    const why =
      r.body.reason_text && r.body.reason_text !== "unknown"
        ? r.body.reason_text + (r.body.message ? " (" + r.body.message + ")" : "")
        : errorText(r);
    status(el, _("Call to %(number)s failed: %(reason)s", { number: number, reason: why }), false);
  }
  return r;
}

document.addEventListener("click", (ev) => {
  const target = ev.target instanceof Element ? ev.target.closest(".dial") : null;
  if (!target || target.disabled) return;
  const number = (target.dataset.number || target.textContent || "").trim();
  if (!number) return;
  ev.preventDefault();
  const hide = $("dial-private");
  dial(number, hide ? hide.checked : false);
});

// ---------------------------------------------------------------- preferences
export async function savePreferences(changes) {
  return post("/api/me/preferences", changes);
}

const languageSelect = $("ui-language");
if (languageSelect) {
  languageSelect.addEventListener("change", async () => {
    const r = await savePreferences({ ui_language: languageSelect.value });
    if (r.ok) location.reload();
    else status($("dial-status"), errorText(r), false);
  });
}
