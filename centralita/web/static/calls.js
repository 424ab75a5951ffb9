// /calls: add or correct the outcome of a call after the fact (supervisors, and the agent
// who took the call; the server checks).
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

export function setup() {
  document.addEventListener("click", (ev) => {
    const button = ev.target instanceof Element ? ev.target.closest(".outcome-edit") : null;
    if (button) open(button);
  });
  $("calls-outcome-form").addEventListener("submit", save);
  $("calls-outcome-cancel").addEventListener("click", () => $("outcome-dialog").close());
}
