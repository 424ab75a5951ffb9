// The alerts of a ringing call: a ring sound, a desktop notification and a flashing tab
// title. Each can be turned off by the agent (saved on the server with their preferences).
"use strict";
import { _ } from "./i18n.js";
import { $, show, savePreferences, status } from "./common.js";

const ASKED_KEY = "centralita.notifications.asked";
const ringUrl = (document.querySelector('meta[name="ring-url"]') || {}).content || "";
const iconUrl = (document.querySelector('meta[name="icon-url"]') || {}).content || "";

export const prefs = { sound: true, notification: true, title: true };
let audio = null;
let flashTimer = null;
let baseTitle = document.title;
const notifications = new Map(); // call_id -> Notification

function ringer() {
  if (!audio && ringUrl) {
    audio = new Audio(ringUrl);
    audio.loop = true;
    audio.preload = "auto";
  }
  return audio;
}

async function playRing() {
  const a = ringer();
  if (!a) return;
  try {
    a.currentTime = 0;
    await a.play();
    show($("sound-banner"), false);
  } catch (err) {
    // Autoplay refused until the agent interacts with the page: say so, and ring on the
    // next click.
    show($("sound-banner"), true);
  }
}

function stopRing() {
  if (audio) {
    audio.pause();
    audio.currentTime = 0;
  }
}

function startFlash(text) {
  stopFlash();
  let on = false;
  flashTimer = setInterval(() => {
    on = !on;
    document.title = on ? "☎ " + text : baseTitle;
  }, 1000);
  document.title = "☎ " + text;
}

// A prefix to the tab's own title (the pending callbacks' count), kept while it flashes.
let titlePrefix = "";
let ownTitle = null;
export function setTitlePrefix(prefix) {
  if (ownTitle === null) ownTitle = baseTitle;
  titlePrefix = prefix;
  baseTitle = titlePrefix + ownTitle;
  if (flashTimer === null) document.title = baseTitle;
}

function stopFlash() {
  if (flashTimer !== null) clearInterval(flashTimer);
  flashTimer = null;
  document.title = baseTitle;
}

function notify(callId, title, body) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  try {
    const n = new Notification(title, { body: body, tag: "centralita-" + callId, icon: iconUrl });
    n.onclick = () => {
      window.focus();
      n.close();
    };
    notifications.set(callId, n);
  } catch (err) {
    // Some browsers allow notifications only from a service worker: the other alerts stay.
  }
}

const ringing = new Map(); // call_id -> caller text, while ringing

// A call rings: every alert the agent keeps on.
export function ring(callId, callerText) {
  if (ringing.has(callId)) return;
  ringing.set(callId, callerText);
  if (prefs.sound) playRing();
  if (prefs.title) startFlash(_("Call from %(caller)s", { caller: callerText }));
  if (prefs.notification) notify(callId, _("Incoming call"), callerText);
}

// The call stopped ringing (answered, ended, or closed by the agent).
export function silence(callId) {
  if (!ringing.delete(callId)) return;
  const n = notifications.get(callId);
  if (n) n.close();
  notifications.delete(callId);
  if (ringing.size === 0) {
    stopRing();
    stopFlash();
  } else if (prefs.title) {
    startFlash(_("Call from %(caller)s", { caller: ringing.values().next().value }));
  }
}

// ---------------------------------------------------------------- asking, once
function offerNotifications() {
  if (!("Notification" in window) || !prefs.notification) return;
  if (Notification.permission !== "default" || localStorage.getItem(ASKED_KEY)) return;
  show($("notify-banner"), true);
}

function setup(initial) {
  Object.assign(prefs, initial || {});
  ownTitle = document.title;
  baseTitle = titlePrefix + ownTitle;
  for (const [key, id] of [["sound", "alert-sound"], ["notification", "alert-notification"], ["title", "alert-title"]]) {
    const box = $(id);
    if (!box) continue;
    box.checked = !!prefs[key];
    box.addEventListener("change", async () => {
      const r = await savePreferences({ alerts: { [key]: box.checked } });
      if (r.ok) {
        prefs[key] = box.checked;
        if (key === "notification" && box.checked) offerNotifications();
        if (key === "sound" && !box.checked) stopRing();
        if (key === "title" && !box.checked) stopFlash();
      } else {
        box.checked = !!prefs[key];
        status($("dial-status"), _("Could not save your alert settings."), false);
      }
    });
  }
  const allow = $("notify-allow");
  if (allow) {
    allow.addEventListener("click", async () => {
      localStorage.setItem(ASKED_KEY, "1");
      show($("notify-banner"), false);
      try {
        await Notification.requestPermission();
      } catch (err) {
        // An old browser without the promise form: nothing more to do.
      }
    });
  }
  const later = $("notify-later");
  if (later) {
    later.addEventListener("click", () => {
      localStorage.setItem(ASKED_KEY, "1");
      show($("notify-banner"), false);
    });
  }
  const test = $("alert-test");
  if (test) {
    test.addEventListener("click", async () => {
      await playRing();
      setTimeout(() => {
        if (ringing.size === 0) stopRing();
      }, 1500);
    });
  }
  // After a blocked autoplay, the agent's next click may start the sound (after the click,
  // so that nothing moves under the pointer while it is pressed).
  document.addEventListener("click", () => {
    if (ringing.size && prefs.sound && audio && audio.paused) playRing();
    else show($("sound-banner"), false);
  });
  offerNotifications();
}

export { setup };
