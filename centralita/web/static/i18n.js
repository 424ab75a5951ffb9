// The page scripts' messages, translated: the server puts this page's language and its
// catalogue (from centralita/web/locale) in <script id="i18n-catalogue">. Messages are marked
// with _("…") so that Babel extracts them (python -m centralita.web.i18n update).
"use strict";

const source = document.getElementById("i18n-catalogue");
const catalogue = source ? JSON.parse(source.textContent || "{}") : {};
const messages = catalogue.messages || {};

export const language = catalogue.language || document.documentElement.lang || "en";
// Numbers and dates with Latin digits, as phone numbers are written (Maghreb usage too).
const formatLocale = language === "ar" ? "ar-u-nu-latn" : language;

// gettext's plural forms are in CLDR order (zero, one, two, few, many, other), the order
// Babel writes them for a language; Intl.PluralRules tells which category n is in.
const CLDR_ORDER = ["zero", "one", "two", "few", "many", "other"];
const plurals = new Intl.PluralRules(language);
const categories = CLDR_ORDER.filter((c) => plurals.resolvedOptions().pluralCategories.includes(c));

function format(text, params) {
  if (!params) return text;
  return text.replace(/%\((\w+)\)s/g, (all, name) =>
    Object.prototype.hasOwnProperty.call(params, name) ? String(params[name]) : all,
  );
}

// _("Call to %(number)s", {number: n}): the translation of a message, with its parameters.
export function _(message, params) {
  const found = messages[message];
  return format(typeof found === "string" && found ? found : message, params);
}

export function ngettext(singular, plural, n, params) {
  const found = messages[singular];
  const all = Object.assign({ num: n }, params || {});
  if (Array.isArray(found)) {
    const index = Math.max(0, categories.indexOf(plurals.select(n)));
    if (found[index]) return format(found[index], all);
  }
  return format(n === 1 ? singular : plural, all);
}

const dateTime = new Intl.DateTimeFormat(formatLocale, { dateStyle: "medium", timeStyle: "short" });
const timeOnly = new Intl.DateTimeFormat(formatLocale, { timeStyle: "short" });

// A date and time in the agent's language ("" for a value that is not one).
export function shownDateTime(value) {
  const when = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return isNaN(when.getTime()) ? "" : dateTime.format(when);
}

export function shownTime(epochSeconds) {
  const when = new Date(epochSeconds * 1000);
  return isNaN(when.getTime()) ? "" : timeOnly.format(when);
}

// 75 -> "1:15", 3725 -> "1:02:05" (digits as the language writes them).
const digits = new Intl.NumberFormat(formatLocale, { minimumIntegerDigits: 2, useGrouping: false });
const plain = new Intl.NumberFormat(formatLocale, { useGrouping: false });
export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = digits.format(s % 60);
  return h ? plain.format(h) + ":" + digits.format(m) + ":" + rest : plain.format(m) + ":" + rest;
}
