// The supervisor wallboard: every queue and agent, live over the event stream.
"use strict";

const $ = (id) => document.getElementById(id);
let board = null;

function render() {
  if (!board) return;
  const now = Date.now();
  const qs = $("queues").tBodies[0];
  qs.replaceChildren(...board.queues.map((q) => {
    const t = q.today;
    const longest = cti.el("td", { class: "num" + (q.longest_wait_ms > t.threshold_secs * 1000 ? " alert" : "") },
      cti.duration(q.longest_wait_ms));
    return cti.el("tr", { "data-queue": q.name },
      cti.el("td", {}, q.name),
      cti.el("td", { class: "num", "data-field": "waiting" }, String(q.waiting)),
      longest,
      cti.el("td", { class: "num" }, q.agents_ready + " / " + q.agents_logged_in),
      cti.el("td", { class: "num" }, String(t.offered)),
      cti.el("td", { class: "num" }, String(t.answered)),
      cti.el("td", { class: "num", "data-field": "service-level" }, cti.pct(t.service_level)),
      cti.el("td", { class: "num", "data-field": "abandon-rate" }, cti.pct(t.abandon_rate)));
  }));
  const as = $("agents").tBodies[0];
  as.replaceChildren(...board.agents.map((a) => {
    const state = a.state + (a.reason ? " (" + a.reason + ")" : "");
    return cti.el("tr", { "data-agent": a.id },
      cti.el("td", {}, a.id),
      cti.el("td", {}, a.name),
      cti.el("td", { "data-field": "state", "data-state": a.state },
        cti.el("span", { class: "badge state-" + a.state }, state)),
      cti.el("td", { class: "num" }, a.since_ms ? cti.duration(now - a.since_ms) : "-"),
      cti.el("td", { class: "num" }, String(a.calls_today)));
  }));
  $("updated").textContent = "updated " + new Date(board.at_ms).toLocaleTimeString();
  $("zone").textContent = board.time_zone ? ", " + board.time_zone : "";
}

function onEvent(e) {
  if (e.type === "wallboard") {
    board = e.board;
    render();
  } else if (e.type === "agent-state" && board) {
    // Between two boards, show a state change at once.
    const a = board.agents.find((x) => x.id === e.agent);
    if (a) {
      a.state = e.state;
      a.reason = e.reason;
      a.since_ms = e.since_ms;
      render();
    }
  }
}

function show() {
  const logged = !!cti.token;
  $("login").classList.toggle("hidden", logged);
  $("board").classList.toggle("hidden", !logged);
  $("btn-logout").classList.toggle("hidden", !logged);
  $("who").textContent = logged && cti.me ? cti.me.name + " (" + cti.me.id + ")" : "";
  if (logged) cti.connect(onEvent, (s) => { $("link").textContent = s; $("link").dataset.link = s; });
}

document.addEventListener("DOMContentLoaded", () => {
  cti.onLoggedOut = () => { if (cti.ws) cti.ws.close(); show(); };
  cti.bindLogin(show);
  $("btn-logout").addEventListener("click", () => cti.logout());
  setInterval(render, 1000);
  show();
});
