// Centralita's page script (an ES module, no build step): click-to-dial and the language
// menu on every page; on the console, the screen pops, the agent's state, the alerts and
// the dial box over the /ws WebSocket; on /calls, the outcome dialog.
"use strict";
import { $ } from "./common.js";

const configEl = $("console-config");
if (configEl) {
  const [consolePage] = await Promise.all([import("./console-page.js")]);
  consolePage.start(JSON.parse(configEl.textContent || "{}"));
}
if ($("outcome-dialog")) {
  const calls = await import("./calls.js");
  calls.setup();
}
