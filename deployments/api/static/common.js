// CallFleet desk and wallboard: what both pages share. No libraries, no network beyond
// this origin. The token lives in this tab only (sessionStorage) and goes out only in
// the Authorization header and the feed's first websocket message, never in a URL.
"use strict";

const CF = (() => {
  const KEY = "callfleet-token";
  let token = sessionStorage.getItem(KEY) || "";

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  async function api(path, opts = {}) {
    const headers = { Authorization: "Bearer " + token };
    const init = { method: opts.method || "GET", headers, cache: "no-store" };
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(opts.body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      return { ok: false, status: 0, data: { detail: "the server is unreachable" } };
    }
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    return { ok: res.ok, status: res.status, data };
  }

  function detail(res) {
    const d = res.data && res.data.detail;
    if (!d) return "HTTP " + res.status;
    if (typeof d === "string") return d;
    if (Array.isArray(d)) return d.map((x) => x.msg || JSON.stringify(x)).join("; ");
    return d.detail || JSON.stringify(d);
  }

  function reason(res) {
    const d = res.data && res.data.detail;
    return d && typeof d === "object" ? d.reason : undefined;
  }

  // Sign-in form (label "Token", button "Sign in"); calls onSession(session) when the
  // token is good. A stored token is tried once on load.
  function signIn(onSession) {
    const form = document.getElementById("signin");
    const input = document.getElementById("token");
    const error = document.getElementById("signin-error");
    async function attempt() {
      const res = await api("session");
      if (res.ok) {
        sessionStorage.setItem(KEY, token);
        error.textContent = "";
        const refusal = onSession(res.data);
        if (refusal) {
          error.textContent = refusal;
          forget();
          return;
        }
        form.hidden = true;
        return;
      }
      forget();
      error.textContent = res.status === 401 ? "Sign-in failed: wrong or unknown token."
        : "Sign-in failed: " + detail(res);
    }
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      token = input.value.trim();
      input.value = "";
      if (!token) { error.textContent = "Enter your token."; return; }
      attempt();
    });
    if (token) attempt();
  }

  function forget() {
    token = "";
    sessionStorage.removeItem(KEY);
  }

  function feedUrl(path) {
    const url = new URL(path, location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    return url.toString();
  }

  function authMessage() { return JSON.stringify({ type: "auth", token }); }

  function duration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    const m = Math.floor(s / 60);
    return m + ":" + String(s % 60).padStart(2, "0");
  }

  function pct(x) { return x === null || x === undefined ? "–" : (x * 100).toFixed(1) + " %"; }

  // "**word**" (the knowledge base's highlight) as <mark>, everything else as text
  function highlighted(text) {
    return String(text).split("**").map((part, i) => (i % 2 ? el("mark", {}, part) : part));
  }

  return { el, api, detail, reason, signIn, forget, feedUrl, authMessage, duration, pct,
           highlighted };
})();
