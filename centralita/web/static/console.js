// Centralita console: click-to-dial everywhere, and on the console page the screen pop.
// Text from calls (names, numbers, notes) is a stranger's: it is only ever set with
// textContent, never as HTML.
"use strict";
(function () {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.content : "";
  const $ = (id) => document.getElementById(id);

  async function request(method, url, data) {
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
      return { ok: false, status: 0, body: { error: String(err) } };
    }
    let body = {};
    try {
      body = await response.json();
    } catch (err) {
      body = {};
    }
    return { ok: response.ok, status: response.status, body: body };
  }
  const post = (url, data) => request("POST", url, data);

  function status(el, text, ok) {
    if (!el) return;
    el.textContent = text;
    el.dataset.ok = ok === undefined ? "" : String(ok);
  }

  // ---------------------------------------------------------------- click-to-dial
  async function dial(number, hidden) {
    const el = $("dial-status");
    status(el, "Calling " + number + "…");
    const r = await post("/api/dial", { number: number, private: !!hidden });
    if (r.ok) {
      status(el, "Call to " + number + ": " + (r.body.reason_text || r.body.response), true);
    } else {
      const why = r.body.reason_text && r.body.reason_text !== "unknown"
        ? r.body.reason_text + (r.body.message ? " (" + r.body.message + ")" : "")
        : r.body.error || r.body.message || "HTTP " + r.status;
      status(el, "Call to " + number + " failed: " + why, false);
    }
  }
  document.addEventListener("click", (ev) => {
    const target = ev.target instanceof Element ? ev.target.closest(".dial") : null;
    if (!target) return;
    const number = (target.dataset.number || target.textContent || "").trim();
    if (!number) return;
    ev.preventDefault();
    const hide = $("dial-private");
    dial(number, hide ? hide.checked : false);
  });
  const dialForm = $("dial-form");
  if (dialForm) {
    dialForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const number = $("dial-number").value.trim();
      if (number) dial(number, $("dial-private").checked);
    });
  }

  // ---------------------------------------------------------------- screen pop
  const pop = $("pop");
  if (!pop) return;
  let current = null; // {call_id, number, private, contact_id}

  function show(el, visible) {
    el.hidden = !visible;
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
  }

  function dialButton(number) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "dial number";
    b.dataset.number = number;
    b.textContent = number;
    return b;
  }

  function showContact(c) {
    current.contact_id = c.id;
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
    pop.dataset.contactId = String(c.id);
    show($("pop-contact"), true);
    show($("pop-choose"), false);
    show($("pop-unknown"), false);
  }

  function showChoice(contacts) {
    const list = $("choose-list");
    clear(list);
    for (const c of contacts) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "choose-contact";
      b.dataset.contactId = String(c.id);
      b.textContent = c.company ? c.name + " (" + c.company + ")" : c.name;
      b.addEventListener("click", () => showContact(c));
      li.appendChild(b);
      list.appendChild(li);
    }
    show($("pop-contact"), false);
    show($("pop-choose"), true);
    show($("pop-unknown"), false);
  }

  function showUnknown(isPrivate) {
    $("unknown-text").textContent = isPrivate
      ? "Private number: search the caller by name."
      : "Unknown number: save it as a new contact, link it to one, or ignore it.";
    $("search-title").textContent = isPrivate ? "Search by name" : "Link to an existing contact";
    show($("new-contact-form"), !isPrivate);
    clear($("search-results"));
    show($("pop-contact"), false);
    show($("pop-choose"), false);
    show($("pop-unknown"), true);
  }

  function setState(msg) {
    const kind = msg.type.slice(5);
    const label = { ringing: "Ringing", answered: "On call", ended: "Ended" }[kind] || kind;
    $("pop-state").textContent = label;
    pop.dataset.state = kind;
  }

  function newPop(msg) {
    current = {
      call_id: msg.call_id,
      uniqueid: msg.uniqueid || "",
      number: msg.number,
      private: !!msg.private || !msg.number,
      contact_id: null,
    };
    pop.dataset.callId = msg.call_id;
    delete pop.dataset.contactId;
    $("pop-direction").textContent = msg.direction === "out" ? "Outgoing to" : "Incoming from";
    const num = $("pop-number");
    num.textContent = msg.number || "private number";
    num.dataset.number = msg.number || "";
    num.disabled = !msg.number || current.private;
    $("pop-name").textContent = msg.name || "";
    $("pop-queue").textContent = msg.queue ? "queue " + msg.queue : "";
    $("pop-customer-id").textContent = msg.customer_id ? "customer ID " + msg.customer_id : "";
    const crm = $("pop-crm");
    if (msg.crm_url && /^https?:\/\//i.test(msg.crm_url)) {
      crm.href = msg.crm_url;
      show(crm, true);
    } else {
      show(crm, false);
    }
    $("outcome-form").reset();
    status($("outcome-status"), "");
    const contacts = msg.contacts || [];
    if (contacts.length === 1) {
      showContact(contacts[0]);
    } else if (contacts.length > 1) {
      showChoice(contacts);
    } else {
      showUnknown(current.private);
    }
    show($("idle"), false);
    show(pop, true);
  }

  function onMessage(msg) {
    if (typeof msg.type !== "string" || msg.type.indexOf("call.") !== 0) return;
    if (!current || current.call_id !== msg.call_id) {
      if (msg.type === "call.ended") return; // the end of a call we are not showing
      newPop(msg);
    }
    setState(msg);
  }

  // The WebSocket, reconnected with a growing delay; the server resends open pops.
  let delay = 1000;
  function connect() {
    const state = $("ws-state");
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
    ws.addEventListener("open", () => {
      delay = 1000;
      state.textContent = "connected";
      state.dataset.state = "open";
    });
    ws.addEventListener("message", (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (err) {
        return;
      }
      onMessage(msg);
    });
    ws.addEventListener("close", (ev) => {
      state.textContent = "disconnected";
      state.dataset.state = "closed";
      if (ev.code === 1008) return; // refused (too many consoles): do not hammer
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 15000);
    });
  }
  connect();

  $("new-contact-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const r = await post("/api/contacts", {
      name: $("new-name").value,
      company: $("new-company").value,
      notes: $("new-notes").value,
      number: current.private ? "" : current.number,
    });
    if (r.ok) showContact(r.body.contact);
    else status($("outcome-status"), r.body.error || "could not save the contact", false);
  });

  $("search-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const q = $("search-q").value.trim();
    if (!q) return;
    const r = await request("GET", "/api/contacts?q=" + encodeURIComponent(q));
    const list = $("search-results");
    clear(list);
    for (const c of (r.ok && r.body.contacts) || []) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "link-contact";
      b.dataset.contactId = String(c.id);
      b.textContent = (current.private ? "This is " : "Link to ") + c.name;
      b.addEventListener("click", async () => {
        if (current.private) {
          showContact(c);
          return;
        }
        const linked = await post("/api/contacts/" + c.id + "/numbers", { number: current.number });
        if (linked.ok) showContact(linked.body.contact);
        else status($("outcome-status"), linked.body.error || "could not link", false);
      });
      li.appendChild(b);
      list.appendChild(li);
    }
    if (!list.firstChild) {
      const li = document.createElement("li");
      li.textContent = "No contact with that name.";
      list.appendChild(li);
    }
  });

  $("ignore-unknown").addEventListener("click", () => show($("pop-unknown"), false));

  $("outcome-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const r = await post("/api/outcomes", {
      call_id: current.call_id,
      uniqueid: current.uniqueid,
      outcome: $("outcome").value,
      notes: $("outcome-notes").value,
      follow_up: $("follow-up").value,
      contact_id: current.contact_id === null ? "" : String(current.contact_id),
    });
    if (r.ok) status($("outcome-status"), "Saved.", true);
    else status($("outcome-status"), r.body.error || "could not save", false);
  });

  $("pop-dismiss").addEventListener("click", async () => {
    if (current) await post("/api/pops/dismiss", { call_id: current.call_id });
    current = null;
    show(pop, false);
    show($("idle"), true);
  });
})();
