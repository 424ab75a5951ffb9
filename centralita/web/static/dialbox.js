// The dial box: shows the number as it will be dialled (the server normalises it with
// phonenumbers), says clearly why a number is refused, and offers the last numbers dialled
// from this browser.
"use strict";
import { _ } from "./i18n.js";
import { $, clear, dial, element, errorText, onDialed, request, status } from "./common.js";

const RECENT_MAX = 10;
let recentKey = "centralita.recent";
let timer = null;
let asked = 0;

function recent() {
  try {
    const list = JSON.parse(localStorage.getItem(recentKey) || "[]");
    return Array.isArray(list) ? list.filter((n) => typeof n === "string") : [];
  } catch (err) {
    return [];
  }
}

function remember(number) {
  const list = [number, ...recent().filter((n) => n !== number)].slice(0, RECENT_MAX);
  localStorage.setItem(recentKey, JSON.stringify(list));
  renderRecent();
}

function renderRecent() {
  const datalist = $("recent-numbers");
  clear(datalist);
  for (const n of recent()) datalist.appendChild(element("option", { value: n }));
}

async function preview() {
  const input = $("dial-number");
  const out = $("dial-preview");
  const raw = input.value.trim();
  const mine = ++asked;
  if (!raw) {
    status(out, "");
    input.removeAttribute("aria-invalid");
    return null;
  }
  const r = await request("GET", "/api/numbers/normalize?number=" + encodeURIComponent(raw));
  if (mine !== asked) return null; // a later keystroke asked again
  if (r.ok) {
    status(out, _("Will dial %(number)s", { number: r.body.display || r.body.number }), true);
    input.removeAttribute("aria-invalid");
    return r.body.number;
  }
  if (r.status === 404) {
    status(out, ""); // a server without the normaliser: the dial itself will check
    return raw;
  }
  status(out, errorText(r, _("This is not a phone number.")), false);
  input.setAttribute("aria-invalid", "true");
  return null;
}

export function focus() {
  const input = $("dial-number");
  input.focus();
  input.select();
}

export function setup(extension) {
  recentKey = "centralita.recent." + extension;
  const input = $("dial-number");
  if (!input) return;
  renderRecent();
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(preview, 250);
  });
  onDialed(remember);
  $("dial-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const raw = input.value.trim();
    if (!raw) return;
    clearTimeout(timer);
    const r = await dial(raw, $("dial-private").checked);
    if (!r.ok && r.status === 400) {
      status($("dial-preview"), errorText(r, _("This is not a phone number.")), false);
      input.setAttribute("aria-invalid", "true");
    }
  });
}
