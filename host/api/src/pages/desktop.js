// The agent desktop: state buttons, the offered call with its screen-pop card,
// call controls. Everything arrives over the event stream; buttons call the API.
"use strict";

const $ = (id) => document.getElementById(id);
let current = null; // { call_id, final: bool, paused: bool }
let stateSince = null;

function log(msg) {
  const line = cti.el("div", {}, new Date().toLocaleTimeString() + "  " + msg);
  $("log").prepend(line);
}

function showState(state, since) {
  const b = $("agent-state");
  b.textContent = state;
  b.className = "badge state-" + state;
  b.dataset.state = state;
  stateSince = since || Date.now();
}

function renderCard(card, provisional) {
  $("card").dataset.provisional = provisional ? "true" : "false";
  $("card-title").textContent = card.title;
  const dl = $("card-fields");
  dl.replaceChildren();
  for (const f of card.fields || []) dl.append(cti.el("dt", {}, f.label), cti.el("dd", {}, f.value));
  const notes = $("card-notes");
  notes.replaceChildren(...(card.notes || []).map((n) => cti.el("li", {}, n)));
  const links = $("card-links");
  links.replaceChildren();
  for (const l of card.links || []) {
    // Only http(s) links: a card comes from a plugin and must not run script.
    if (!/^https?:\/\//i.test(l.url)) continue;
    links.append(cti.el("a", { href: l.url, target: "_blank", rel: "noopener noreferrer" }, l.label));
  }
}

function showCall(callId, status, caller, queue) {
  if (!current || current.call_id !== callId) current = { call_id: callId, final: false, paused: false };
  $("no-call").classList.add("hidden");
  $("call").classList.remove("hidden");
  $("call").dataset.callId = callId;
  const s = $("call-status");
  s.textContent = status;
  s.dataset.status = status;
  s.className = "badge state-" + (status === "connected" ? "on-call" : status);
  if (caller !== undefined) $("call-caller").textContent = caller;
  if (queue !== undefined) $("call-queue").textContent = queue ? "queue " + queue : "";
  $("recording-state").textContent = current.paused ? "recording paused" : "";
  $("btn-pause").textContent = current.paused ? "Resume recording" : "Secure pause";
}

function clearCall() {
  current = null;
  $("call").classList.add("hidden");
  $("no-call").classList.remove("hidden");
  $("card-title").textContent = "";
  $("card-fields").replaceChildren();
  $("card-notes").replaceChildren();
  $("card-links").replaceChildren();
}

function onEvent(e) {
  switch (e.type) {
    case "agent-state":
      if (cti.me && e.agent === cti.me.id) showState(e.state, e.since_ms);
      break;
    case "call-offered":
      showCall(e.call_id, "ringing", e.caller, e.queue);
      log("call from " + e.caller + (e.queue ? " (queue " + e.queue + ")" : ""));
      break;
    case "card":
      if (!current || current.call_id !== e.call_id) showCall(e.call_id, "ringing");
      if (e.provisional && current.final) break;
      if (!e.provisional) current.final = true;
      renderCard(e.card, e.provisional);
      if (e.failure) log("screen-pop fell back: " + e.failure);
      break;
    case "call-connected":
      showCall(e.call_id, "connected");
      break;
    case "call-transferred":
      log("call transferred to " + JSON.stringify(e.target) + " by " + e.by);
      if (current && current.call_id === e.call_id) clearCall();
      break;
    case "call-ended":
      if (current && current.call_id === e.call_id) clearCall();
      log("call ended: " + e.disposition);
      break;
    case "queues":
      $("queues").replaceChildren(...e.queues.map((q) =>
        cti.el("span", { class: "badge", "data-queue": q.name },
          q.name + ": " + q.waiting + " waiting" + (q.waiting ? ", longest " + cti.duration(q.longest_wait_ms) : ""))));
      break;
    case "lagged":
      log("missed " + e.missed + " events; refreshing");
      refresh();
      break;
  }
}

async function refresh() {
  try {
    const me = await cti.api("GET", "/api/me");
    if (me.agent) showState(me.agent.state, me.agent.since_ms);
    if (me.call) showCall(me.call.call_id, me.call.state, me.call.caller, me.call.queue);
    else clearCall();
  } catch (e) {
    log(e.message);
  }
}

async function act(what, fn) {
  try {
    await fn();
  } catch (e) {
    log(what + ": " + e.message);
  }
}

function show() {
  const logged = !!cti.token;
  $("login").classList.toggle("hidden", logged);
  $("desk").classList.toggle("hidden", !logged);
  $("btn-logout").classList.toggle("hidden", !logged);
  $("who").textContent = logged && cti.me ? cti.me.name + " (" + cti.me.id + ")" : "";
  if (logged) {
    refresh();
    cti.connect(onEvent, (s) => { $("link").textContent = s; $("link").dataset.link = s; });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  cti.onLoggedOut = () => { if (cti.ws) cti.ws.close(); show(); };
  cti.bindLogin(show);
  $("btn-logout").addEventListener("click", () => cti.logout());
  $("btn-ready").addEventListener("click", () => act("ready", async () => {
    const a = await cti.api("POST", "/api/me/state", { state: "ready" });
    showState(a.state, a.since_ms);
  }));
  $("btn-not-ready").addEventListener("click", () => act("not ready", async () => {
    const a = await cti.api("POST", "/api/me/state", { state: "not-ready", reason: $("not-ready-reason").value });
    showState(a.state, a.since_ms);
  }));
  $("btn-wrap-up-done").addEventListener("click", () => act("wrap-up done", async () => {
    const a = await cti.api("POST", "/api/me/state", { state: "wrap-up-done" });
    showState(a.state, a.since_ms);
  }));
  $("btn-hangup").addEventListener("click", () => act("hang up", async () => {
    if (current) await cti.api("POST", "/api/calls/" + encodeURIComponent(current.call_id) + "/hangup");
  }));
  $("btn-transfer").addEventListener("click", () => act("transfer", async () => {
    if (!current) return;
    const target = {};
    target[$("transfer-kind").value] = $("transfer-target").value.trim();
    await cti.api("POST", "/api/calls/" + encodeURIComponent(current.call_id) + "/transfer", target);
  }));
  $("btn-pause").addEventListener("click", () => act("recording", async () => {
    if (!current) return;
    const a = await cti.api("POST", "/api/calls/" + encodeURIComponent(current.call_id) + "/recording",
      { action: current.paused ? "resume" : "pause" });
    current.paused = a.paused;
    showCall(current.call_id, $("call-status").dataset.status);
    log("recording " + (a.paused ? "paused" : "running") + " (policy: " + a.policy_action + ")");
  }));
  setInterval(() => {
    if (stateSince) $("state-since").textContent = "for " + cti.duration(Date.now() - stateSince);
  }, 1000);
  show();
});
