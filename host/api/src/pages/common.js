// Shared by the desktop and the wallboard: session, REST calls, event stream.
// Plain browser JavaScript, no build step, no third-party code.
"use strict";

const cti = {
  token: sessionStorage.getItem("ctihost.token"),
  me: JSON.parse(sessionStorage.getItem("ctihost.me") || "null"),

  async api(method, path, body) {
    const opts = { method, headers: {} };
    if (cti.token) opts.headers["Authorization"] = "Bearer " + cti.token;
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = { error: text }; }
    if (r.status === 401 && path !== "/api/login") cti.forget();
    if (!r.ok) throw new Error((data && data.error) || r.statusText);
    return data;
  },

  async login(id, password) {
    const a = await cti.api("POST", "/api/login", { id, password });
    cti.token = a.token;
    cti.me = { id: a.id, name: a.name, role: a.role };
    sessionStorage.setItem("ctihost.token", a.token);
    sessionStorage.setItem("ctihost.me", JSON.stringify(cti.me));
    return a;
  },

  async logout() {
    try { await cti.api("POST", "/api/logout"); } catch (_) { /* gone already */ }
    cti.forget();
  },

  forget() {
    cti.token = null;
    cti.me = null;
    sessionStorage.removeItem("ctihost.token");
    sessionStorage.removeItem("ctihost.me");
    if (cti.onLoggedOut) cti.onLoggedOut();
  },

  // Open the event stream; reconnects after a drop while the session lasts.
  connect(onEvent, onStatus) {
    if (!cti.token) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(proto + "//" + location.host + "/api/events");
    cti.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ token: cti.token }));
    ws.onmessage = (m) => {
      let e;
      try { e = JSON.parse(m.data); } catch (_) { return; }
      if (e.type === "hello" && onStatus) onStatus("live");
      onEvent(e);
    };
    ws.onclose = (c) => {
      if (onStatus) onStatus("offline");
      if (c.code === 4401) { cti.forget(); return; }
      if (cti.token && cti.ws === ws) setTimeout(() => cti.connect(onEvent, onStatus), 1000);
    };
  },

  el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c === null || c === undefined ? "" : c);
    return e;
  },

  duration(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    const m = Math.floor(s / 60);
    return m + ":" + String(s % 60).padStart(2, "0");
  },

  pct(x) {
    return x === null || x === undefined ? "-" : (x * 100).toFixed(1) + "%";
  },

  // The login form of a page: calls `then` once logged in.
  bindLogin(then) {
    const form = document.getElementById("login");
    const err = document.getElementById("login-error");
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      err.textContent = "";
      try {
        await cti.login(
          document.getElementById("login-id").value.trim(),
          document.getElementById("login-password").value,
        );
        document.getElementById("login-password").value = "";
        then();
      } catch (e) {
        err.textContent = e.message;
      }
    });
  },
};
