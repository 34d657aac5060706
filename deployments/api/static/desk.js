// The agent desk: sign in, state, heartbeat, offers (ring, countdown, brief, accept or
// decline), the call with its live transcript, hang up, wrap-up.
"use strict";

(() => {
  const { el, api, detail, reason } = CF;
  const $ = (id) => document.getElementById(id);
  let session = null;      // GET session
  let agentId = null;
  let skew = 0;            // server clock minus ours (s)
  let ws = null;
  let heartbeat = null;
  let current = null;      // the offer on screen
  let countdown = null;
  let ringer = null;
  let call = null;         // {call_uuid, timer}
  let signedOut = false;

  const now = () => Date.now() / 1000 + skew;

  function notice(text) {
    const n = $("notice");
    n.textContent = text;
    n.hidden = !text;
  }

  function showState(state) {
    const badge = $("state");
    badge.hidden = false;
    badge.textContent = state.replace("_", " ");
    badge.className = "badge state-" + state;
    badge.dataset.state = state;
  }

  // ---- sign in, state, feed -----------------------------------------------------------

  CF.signIn((s) => {
    if (s.role !== "agent") return "This is a supervisor key: open the wallboard instead.";
    session = s;
    agentId = s.agent_id;
    skew = s.server_time - Date.now() / 1000;
    $("who").textContent = (s.agent && s.agent.profile.name) || agentId;
    $("controls").hidden = false;
    const select = $("disposition");
    select.replaceChildren(...s.dispositions.map((d) => el("option", { value: d }, d.replace("_", " "))));
    signedOut = false;
    setState("available");
    connect();
    return null;
  });

  async function setState(state) {
    const res = await api(`agents/${encodeURIComponent(agentId)}/state`, { method: "POST", body: { state } });
    if (!res.ok) { notice("Could not change state: " + detail(res)); return; }
    showState(res.data.state);
    if (state === "logged_out") signOut();
  }

  $("go-available").addEventListener("click", () => setState("available"));
  $("go-break").addEventListener("click", () => setState("break"));
  $("go-logout").addEventListener("click", () => setState("logged_out"));

  function signOut() {
    signedOut = true;
    if (ws) ws.close(1000, "signed out");
    clearInterval(heartbeat);
    CF.forget();
    $("controls").hidden = true;
    $("signin").hidden = false;
    $("who").textContent = "";
    hideOffer();
  }

  function connect() {
    ws = new WebSocket(CF.feedUrl("agents/feed"));
    ws.onopen = () => {
      ws.send(CF.authMessage());
      $("feed-status").textContent = "connected";
      clearInterval(heartbeat);
      heartbeat = setInterval(() => {
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "heartbeat" }));
      }, Math.max(1, session.heartbeat_s) * 1000);
    };
    ws.onmessage = (msg) => handle(JSON.parse(msg.data));
    ws.onclose = (ev) => {
      clearInterval(heartbeat);
      $("feed-status").textContent = "disconnected";
      if (ev.code === 1008) { signOut(); $("signin-error").textContent = "Signed out: the token was refused."; return; }
      if (!signedOut) setTimeout(connect, 2000);
    };
  }

  function handle(event) {
    if (event.type === "hello") {
      if (event.agent) showState(event.agent.state);
      for (const offer of event.pending_offers || []) showOffer(offer);
    } else if (event.type === "offer") {
      showOffer(event.offer);
    } else if (event.type === "offer_closed") {
      if (current && current.offer_id === event.offer_id && event.state !== "accepted") {
        hideOffer();
        if (event.reason === "caller_hung_up") notice("The caller hung up.");
        else if (event.state === "expired") notice("The offer expired: you were set to break.");
        else if (event.state === "withdrawn") notice("The call was taken back.");
      }
    } else if (event.type === "agent_state") {
      showState(event.state);
      if (event.state === "available" && $("wrapup").dataset.done === "1") {
        $("wrapup").dataset.done = "";
        notice("");
      }
    }
  }

  // ---- offers ---------------------------------------------------------------------------

  function showOffer(offer) {
    if (current && current.offer_id === offer.offer_id) return;
    current = offer;
    notice("");
    $("brief").replaceChildren(...brief(offer));
    $("offer").hidden = false;
    $("accept").disabled = $("decline").disabled = false;
    clearInterval(countdown);
    const tick = () => {
      const left = Math.max(0, Math.ceil(offer.expires_at - now()));
      $("countdown").textContent = left;
      if (left <= 0) clearInterval(countdown);
    };
    tick();
    countdown = setInterval(tick, 250);
    ring(true);
    loadArticles(offer);
  }

  function hideOffer() {
    current = null;
    clearInterval(countdown);
    ring(false);
    $("offer").hidden = true;
  }

  function ring(on) {
    if (ringer) { clearInterval(ringer.timer); ringer.ctx.close(); ringer = null; }
    if (!on || !window.AudioContext) return;
    const ctx = new AudioContext();
    const beep = () => {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      gain.gain.value = 0.08;
      osc.frequency.value = 880;
      osc.connect(gain).connect(ctx.destination);
      osc.start();
      osc.stop(ctx.currentTime + 0.35);
    };
    beep();
    ringer = { ctx, timer: setInterval(beep, 1500) };
  }

  function lastOf(list) {
    for (let i = (list || []).length - 1; i >= 0; i--) if (list[i] && list[i].label) return list[i];
    return null;
  }

  function brief(offer) {
    const c = offer.customer || {};
    const intent = lastOf(offer.intents);
    const facts = el("dl", { class: "facts" },
      el("dt", {}, "Caller"), el("dd", { id: "brief-caller" }, offer.caller || "unknown"),
      el("dt", {}, "Customer"), el("dd", {}, c.name || "unknown", " ",
        c.tier ? el("span", { class: "badge" + (offer.vip ? " vip" : "") }, String(c.tier).toUpperCase()) : "",
        offer.vip && !c.tier ? el("span", { class: "badge vip" }, "VIP") : ""),
      el("dt", {}, "Campaign"), el("dd", {}, offer.campaign_id || "inbound"),
      el("dt", {}, "Why"), el("dd", { id: "brief-reason" }, offer.reason),
      el("dt", {}, "Bot's brief"), el("dd", {}, offer.brief || "–"),
      el("dt", {}, "Intent"), el("dd", { id: "brief-intent" }, intent
        ? `${intent.label.replace(/_/g, " ")} (${Math.round((intent.confidence || 0) * 100)} %)` : "not clear"),
      el("dt", {}, "Emotion"), el("dd", { id: "brief-emotion" }, emotionTrend(offer.emotions)));
    const convo = el("ol", { class: "transcript", id: "brief-transcript", "aria-label": "Conversation so far" },
      ...transcriptLines(offer.transcript));
    return [facts, el("h2", {}, "Conversation so far"), convo,
            el("h2", {}, "Knowledge base"), el("div", { id: "articles", class: "muted" }, "searching…")];
  }

  function emotionTrend(emotions) {
    const labels = (emotions || []).map((e) => (e && e.label) || "–");
    if (!labels.length) return "–";
    return labels.flatMap((label, i) => [i ? " → " : "", el("span", { class: "chip " + label }, label)]);
  }

  function transcriptLines(turns) {
    const out = [];
    for (const t of turns || []) {
      const caller = t.caller !== undefined ? t.caller : t.text;
      if (caller) out.push(el("li", {}, el("span", { class: "who caller" }, "Caller"), caller));
      if (t.bot) out.push(el("li", {}, el("span", { class: "who bot" }, "Bot"), t.bot));
    }
    return out;
  }

  async function loadArticles(offer) {
    const res = await api(`agents/offers/${encodeURIComponent(offer.offer_id)}/articles`);
    const box = $("articles");
    if (!box || !current || current.offer_id !== offer.offer_id) return;
    if (!res.ok || !res.data.length) { box.textContent = "no matching article"; return; }
    box.classList.remove("muted");
    box.replaceChildren(...res.data.map((a) => el("div", { class: "article" },
      el("strong", {}, a.title),
      a.steps && a.steps.length ? el("ol", {}, ...a.steps.map((s) => el("li", {}, ...CF.highlighted(s))))
        : el("p", {}, ...CF.highlighted(a.passage || "")))));
  }

  $("accept").addEventListener("click", async () => {
    if (!current) return;
    const offer = current;
    $("accept").disabled = $("decline").disabled = true;
    const res = await api(`agents/offers/${encodeURIComponent(offer.offer_id)}/accept`, { method: "POST", body: {} });
    hideOffer();
    if (res.ok) { startCall(offer); return; }
    if (res.status === 409 && reason(res) === "caller_hung_up") notice("The caller hung up.");
    else notice("Could not take the call: " + detail(res));
  });

  $("decline").addEventListener("click", async () => {
    if (!current) return;
    const offer = current;
    hideOffer();
    const res = await api(`agents/offers/${encodeURIComponent(offer.offer_id)}/reject`, { method: "POST", body: {} });
    if (!res.ok) notice("Decline failed: " + detail(res));
  });

  // ---- the call ---------------------------------------------------------------------------

  function startCall(offer) {
    stopCall();
    call = { call_uuid: offer.call_uuid, started: now() };
    $("call").hidden = false;
    $("hangup").disabled = false;
    $("call-facts").replaceChildren(el("dt", {}, "Caller"), el("dd", {}, offer.caller || "unknown"),
      el("dt", {}, "Customer"), el("dd", {}, (offer.customer || {}).name || "unknown"));
    $("transcript").replaceChildren(...transcriptLines(offer.transcript));
    call.timer = setInterval(poll, 1000);
    poll();
  }

  function stopCall() {
    if (call) clearInterval(call.timer);
  }

  async function poll() {
    if (!call) return;
    const mine = call;
    const res = await api(`agents/${encodeURIComponent(agentId)}/calls/${encodeURIComponent(mine.call_uuid)}`);
    if (call !== mine || !res.ok) return;
    const doc = res.data;
    const since = doc.connected_at || mine.started;
    $("call-time").textContent = CF.duration(now() - since);
    $("call-status").textContent = doc.ended ? "ended" : "live";
    const lines = transcriptLines(doc.transcript);
    if (lines.length !== $("transcript").children.length) {
      $("transcript").replaceChildren(...lines);
      $("transcript").scrollTop = $("transcript").scrollHeight;
    }
    if (doc.ended) callEnded(doc);
  }

  function callEnded(doc) {
    stopCall();
    $("hangup").disabled = true;
    const form = $("wrapup");
    if (form.hidden && !doc.wrap_up) {
      form.hidden = false;
      form.dataset.call = doc.call_uuid;
      form.dataset.done = "";
      $("notes").value = "";
      $("callback").value = "";
      $("converted").checked = false;
    }
  }

  $("hangup").addEventListener("click", async () => {
    if (!call) return;
    $("hangup").disabled = true;
    const res = await api(`agents/${encodeURIComponent(agentId)}/calls/${encodeURIComponent(call.call_uuid)}/hangup`, { method: "POST", body: {} });
    if (!res.ok) { notice("Hang-up failed: " + detail(res)); $("hangup").disabled = false; return; }
    poll();
  });

  $("wrapup").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = $("wrapup");
    const when = $("callback").value ? new Date($("callback").value).getTime() / 1000 : null;
    const body = { disposition: $("disposition").value, notes: $("notes").value,
                   callback_at: when, converted: $("converted").checked };
    const res = await api(`agents/${encodeURIComponent(agentId)}/calls/${encodeURIComponent(form.dataset.call)}/wrap-up`, { method: "POST", body });
    if (!res.ok) { $("wrapup-error").textContent = detail(res); return; }
    $("wrapup-error").textContent = "";
    form.dataset.done = "1";
    form.hidden = true;
    $("call").hidden = true;
    call = null;
    showState(res.data.state);
    if (res.data.state === "available") notice("");
    else notice(`Wrap-up saved. Back to available after the wrap-up time (${session.wrap_up_s} s).`);
  });
})();
