// /calls: add or correct the outcome of a call after the fact (supervisors, and the agent
// who took the call; the server checks), and play a call's recording (quality staff and
// supervisors: the button is only there for them, and the server checks again).
"use strict";
import { _ } from "./i18n.js";
import { $, errorText, post, status } from "./common.js";

let row = null;

function open(button) {
  row = button.closest("tr");
  const dialog = $("outcome-dialog");
  $("calls-outcome").value = button.dataset.outcome || "";
  $("calls-notes").value = button.dataset.notes || "";
  $("calls-follow-up").value = button.dataset.followUp || "";
  const caller = row.querySelector(".dial");
  const when = row.cells[0].textContent.trim();
  $("outcome-dialog-call").textContent = caller ? when + " · " + caller.textContent : when;
  status($("calls-outcome-status"), "");
  dialog.showModal();
  $("calls-outcome").focus();
}

async function save(ev) {
  ev.preventDefault();
  if (!row) return;
  const outcome = $("calls-outcome").value;
  if (!outcome) {
    status($("calls-outcome-status"), _("Choose an outcome first."), false);
    $("calls-outcome").focus();
    return;
  }
  const notes = $("calls-notes").value;
  const followUp = $("calls-follow-up").value;
  const r = await post("/api/outcomes", {
    call_id: row.dataset.callId,
    uniqueid: row.dataset.uniqueid || "",
    outcome: outcome,
    notes: notes,
    follow_up: followUp,
  });
  if (!r.ok) {
    status($("calls-outcome-status"), errorText(r, _("Could not save.")), false);
    return;
  }
  row.querySelector(".outcome").textContent = outcome;
  row.querySelector(".notes").textContent = notes;
  row.querySelector(".follow-up").textContent = followUp;
  const button = row.querySelector(".outcome-edit");
  Object.assign(button.dataset, { outcome: outcome, notes: notes, followUp: followUp });
  button.textContent = _("Correct outcome");
  $("outcome-dialog").close();
  status($("dial-status"), _("Outcome saved."), true);
  button.focus();
}

// The player opens in a row of its own under the call (the table has no room for it): the
// browser fetches the file in ranges (the server audits the playback) and the native
// controls seek, pause and set the volume. The button closes it again.
function playRecording(button) {
  const row = button.closest("tr");
  const next = row.nextElementSibling;
  if (next && next.classList.contains("player-row")) {
    next.remove();
    button.setAttribute("aria-expanded", "false");
    return;
  }
  const player = document.createElement("tr");
  player.className = "player-row";
  const cell = document.createElement("td");
  cell.colSpan = row.cells.length;
  const audio = document.createElement("audio");
  audio.className = "recording";
  audio.controls = true;
  audio.preload = "auto";
  audio.src = button.dataset.src;
  audio.setAttribute("aria-label", button.getAttribute("aria-label") || _("Recording"));
  audio.addEventListener("error", () => {
    status($("dial-status"), _("The recording could not be played."), false);
  });
  cell.append(audio);
  player.append(cell);
  row.after(player);
  button.setAttribute("aria-expanded", "true");
  audio.play().catch(() => {
    // Autoplay refused (no user gesture is remembered): the controls are there to press.
  });
}

export function setup() {
  document.addEventListener("click", (ev) => {
    const target = ev.target instanceof Element ? ev.target : null;
    const button = target ? target.closest(".outcome-edit") : null;
    if (button) open(button);
    const play = target ? target.closest(".play-recording") : null;
    if (play) playRecording(play);
  });
  $("calls-outcome-form").addEventListener("submit", save);
  $("calls-outcome-cancel").addEventListener("click", () => $("outcome-dialog").close());
}
