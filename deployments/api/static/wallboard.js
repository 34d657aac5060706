// The supervisor wallboard: the floor, refreshed every two seconds; listen, whisper or
// barge into a call; pause or resume a campaign; set an agent's state; routing weights.
"use strict";

(() => {
  const { el, api, detail, reason, pct } = CF;
  const $ = (id) => document.getElementById(id);
  const listening = new Map();  // leg uuid -> {call_uuid, mode}
  let timer = null;
  let weightsShown = false;

  function notice(text) {
    const n = $("notice");
    n.textContent = text;
    n.hidden = !text;
  }

  CF.signIn((s) => {
    if (s.role !== "supervisor") {
      return `Agents cannot open the wallboard: this token belongs to agent ${s.agent_id}. ` +
             "Sign in with a supervisor key (the agent desk is at /desk).";
    }
    $("board").hidden = false;
    refresh();
    timer = setInterval(refresh, 2000);
    return null;
  });

  async function refresh() {
    const res = await api("wallboard/state");
    if (res.status === 401 || res.status === 403) {
      clearInterval(timer);
      CF.forget();
      $("board").hidden = true;
      $("signin").hidden = false;
      $("signin-error").textContent = detail(res);
      return;
    }
    if (!res.ok) { $("updated").textContent = "update failed: " + detail(res); return; }
    render(res.data);
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  }

  const WHERE = { bot: "with bot", queued: "queued", with_agent: "with agent" };

  function table(headers, rows, empty) {
    if (!rows.length) return el("p", { class: "muted" }, empty);
    return el("table", {}, el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))),
      el("tbody", {}, ...rows));
  }

  function render(s) {
    renderCalls(s.calls);

    const f = s.queue_figures;
    $("queue-figures").textContent = `today: ${f.answered} answered by agents, ${f.abandoned} abandoned on hold, ${f.overflow} overflowed`;
    $("queue").replaceChildren(table(["Call", "Waiting", "Reason", "Skills"],
      s.queue.map((q) => el("tr", {},
        el("td", {}, q.vip ? el("span", { class: "badge vip" }, "VIP") : "", " ", q.call_uuid.slice(0, 8)),
        el("td", {}, CF.duration(q.waited_s)), el("td", {}, q.reason),
        el("td", {}, Object.keys(q.skills).join(", ") || "–"))),
      "nobody waiting"));

    const counts = {};
    for (const a of s.agents) counts[a.state] = (counts[a.state] || 0) + 1;
    $("agents").replaceChildren(
      el("p", {}, ...Object.entries(counts).map(([k, v]) => el("span", { class: "badge state-" + k }, `${k.replace("_", " ")}: ${v}`))),
      table(["Agent", "State", "Calls", "Handled", "Set state"],
        s.agents.map((a) => el("tr", { "data-agent": a.agent_id },
          el("td", {}, a.profile.name || a.agent_id, a.online ? "" : el("span", { class: "muted" }, " (offline)")),
          el("td", {}, el("span", { class: "badge state-" + a.state }, a.state.replace("_", " "))),
          el("td", {}, a.calls.length), el("td", {}, a.handled),
          el("td", {}, stateSelect(a)))),
        "no agents registered"));

    $("campaigns").replaceChildren(table(
      ["Campaign", "State", "Pacing ratio", "Abandoned 24 h", "Abandoned 30 d", ""],
      s.campaigns.map((c) => el("tr", {},
        el("td", {}, c.name || c.id), el("td", {}, c.state),
        el("td", {}, c.pacing_ratio === null ? "–" : c.pacing_ratio + " (" + c.pacing_mode + ")"),
        el("td", { class: c.abandon_24h > c.abandon_cap ? "over" : "" }, pct(c.abandon_24h)),
        el("td", { class: c.abandon_30d > c.abandon_cap ? "over" : "" }, pct(c.abandon_30d), " / cap ", pct(c.abandon_cap)),
        el("td", {}, c.state === "running"
          ? el("button", { type: "button", onclick: () => campaign(c.id, "pause") }, "Pause")
          : c.state === "paused" ? el("button", { type: "button", onclick: () => campaign(c.id, "resume") }, "Resume") : ""))),
      "no campaigns"));

    $("models").replaceChildren(table(["Model", "Version"],
      Object.entries(s.models).map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", {}, v || "none"))),
      "no model registry here"));
    if (!weightsShown) { weightsForm(s.weights); weightsShown = true; }
    $("latency").replaceChildren(histogram(s.turn_latency));
    $("abandonment").replaceChildren(trend(s.queue_trend, s.campaigns));
    renderListening();
  }

  // rows keyed by call, updated in place: the action buttons stay put between refreshes
  function renderCalls(calls) {
    const box = $("calls");
    let body = box.querySelector("tbody");
    if (!calls.length) { box.replaceChildren(el("p", { class: "muted" }, "no calls right now")); return; }
    if (!body) {
      body = el("tbody");
      box.replaceChildren(el("table", {}, el("thead", {}, el("tr", {},
        ...["Caller", "Where", "Agent", "Time", "Last intent", "Emotion", ""].map((h) => el("th", {}, h)))), body));
    }
    const seen = new Set();
    for (const c of calls) {
      seen.add(c.call_uuid);
      const cells = [
        [c.caller || "–", c.vip ? el("span", { class: "badge vip" }, "VIP") : ""],
        [WHERE[c.where] || c.where], [c.agent_id || "–"], [CF.duration(c.duration_s)],
        [c.intent.label ? `${c.intent.label.replace(/_/g, " ")} ${Math.round((c.intent.confidence || 0) * 100)} %` : "–"],
        [c.emotion.label ? el("span", { class: "chip " + c.emotion.label }, c.emotion.label) : "–"]];
      let row = body.querySelector(`tr[data-call="${CSS.escape(c.call_uuid)}"]`);
      if (!row) {
        row = el("tr", { "data-call": c.call_uuid }, ...cells.map(() => el("td")),
          el("td", {}, ...["listen", "whisper", "barge"].map((mode) =>
            el("button", { type: "button", onclick: () => join(c.call_uuid, mode) },
              mode[0].toUpperCase() + mode.slice(1)))));
        body.append(row);
      }
      cells.forEach((content, i) => row.children[i].replaceChildren(...content));
    }
    for (const row of [...body.children]) if (!seen.has(row.dataset.call)) row.remove();
  }

  function stateSelect(a) {
    const select = el("select", { "aria-label": "state of " + a.agent_id },
      ...["available", "break", "logged_out"].map((st) => el("option", { value: st, selected: st === a.state }, st.replace("_", " "))));
    if (!["available", "break", "logged_out"].includes(a.state)) {
      select.prepend(el("option", { value: "", selected: true, disabled: true }, a.state.replace("_", " ")));
    }
    select.addEventListener("change", async () => {
      const res = await api(`wallboard/agents/${encodeURIComponent(a.agent_id)}/state`, { method: "POST", body: { state: select.value } });
      notice(res.ok ? "" : "Could not change the agent's state: " + detail(res));
      refresh();
    });
    return select;
  }

  async function campaign(id, action) {
    const res = await api(`wallboard/campaigns/${encodeURIComponent(id)}/${action}`, { method: "POST", body: {} });
    notice(res.ok ? "" : `Could not ${action} the campaign: ` + detail(res));
    refresh();
  }

  async function join(callUuid, mode) {
    for (const [leg, info] of listening) {   // already on this call: switch mode
      if (info.call_uuid === callUuid) {
        const res = await api(`wallboard/eavesdrops/${encodeURIComponent(leg)}`, { method: "POST", body: { mode } });
        if (res.ok) info.mode = mode; else if (reason(res) === "call_ended") listening.delete(leg);
        notice(res.ok ? "" : "Could not switch: " + detail(res));
        renderListening();
        return;
      }
    }
    const extension = $("extension").value.trim();
    if (!extension) { notice("Enter your phone extension first (top right)."); return; }
    const res = await api(`wallboard/calls/${encodeURIComponent(callUuid)}/eavesdrop`, { method: "POST", body: { mode, extension } });
    if (!res.ok) { notice(reason(res) === "call_ended" ? "That call has ended." : "Could not join the call: " + detail(res)); return; }
    notice("");
    listening.set(res.data.leg_uuid, { call_uuid: callUuid, mode });
    renderListening();
  }

  function renderListening() {
    const box = $("listening");
    if (!listening.size) { box.className = "muted"; box.textContent = "not listening to any call"; return; }
    box.className = "";
    box.replaceChildren(...[...listening].map(([leg, info]) => el("p", { "data-leg": leg },
      `${info.mode === "listen" ? "Listening to" : info.mode === "whisper" ? "Whispering on" : "Barged into"} call ${info.call_uuid.slice(0, 8)} `,
      el("span", { class: "badge" }, info.mode), " ",
      el("button", { type: "button", onclick: async () => {
        await api(`wallboard/eavesdrops/${encodeURIComponent(leg)}`, { method: "DELETE" });
        listening.delete(leg);
        renderListening();
      } }, "Stop"))));
  }

  function weightsForm(w) {
    const form = $("weights");
    const fields = Object.entries(w).map(([k, v]) => [k, el("input", { id: "w-" + k, name: k, type: "number", step: "0.1", min: "0", value: v, size: 6 })]);
    form.replaceChildren(...fields.flatMap(([k, input]) => [el("label", { for: "w-" + k }, k.replace(/_/g, " ")), input]),
      el("p", {}, el("button", { type: "submit" }, "Apply weights")));
    form.onsubmit = async (ev) => {
      ev.preventDefault();
      const body = {};
      for (const [k, input] of fields) body[k] = parseFloat(input.value);
      const res = await api("wallboard/routing/weights", { method: "PUT", body });
      $("weights-error").textContent = res.ok ? "applied" : detail(res);
    };
  }

  // ---- plots (inline SVG) -----------------------------------------------------------------

  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function histogram(lat) {
    const W = 360, H = 150, pad = 24;
    const root = svg("svg", { viewBox: `0 0 ${W} ${H + 20}`, width: "100%", role: "img", "aria-label": "turn latency histogram" });
    const max = Math.max(1, ...lat.counts);
    const bw = (W - pad) / lat.counts.length;
    lat.counts.forEach((n, i) => {
      const h = (n / max) * (H - 20);
      root.append(svg("rect", { x: pad + i * bw + 1, y: H - h, width: bw - 2, height: h, fill: "#1f6feb" }));
      if (i % 2 === 0) root.append(svg("text", { x: pad + i * bw, y: H + 12 }, lat.bins_ms[i] / 1000 + (i === lat.counts.length - 1 ? "+" : "")));
    });
    root.append(svg("text", { x: W - 40, y: H + 12 }, "s"));
    root.append(svg("text", { x: pad, y: 10 }, lat.turns
      ? `${lat.turns} turns · p50 ${Math.round(lat.p50_ms)} ms · p95 ${Math.round(lat.p95_ms)} ms` : "no turns yet"));
    return root;
  }

  function trend(queueTrend, campaigns) {
    const W = 360, H = 150, pad = 28;
    const root = svg("svg", { viewBox: `0 0 ${W} ${H + 20}`, width: "100%", role: "img", "aria-label": "abandonment trend" });
    const queueRate = queueTrend.map((d) => { const t = d.answered + d.abandoned; return t ? d.abandoned / t : 0; });
    const series = [{ name: "hold (escalations)", color: "#b35900", values: queueRate }];
    for (const c of campaigns) series.push({ name: c.name || c.id, color: "#1f6feb", values: c.trend.map((d) => d.rate) });
    const top = Math.max(0.05, ...series.flatMap((s) => s.values));
    const x = (i) => pad + (i / Math.max(1, queueTrend.length - 1)) * (W - pad - 4);
    const y = (v) => H - (v / top) * (H - 20);
    const cap = 0.03;
    root.append(svg("line", { x1: pad, x2: W, y1: y(cap), y2: y(cap), stroke: "#c62828", "stroke-dasharray": "4 3" }));
    root.append(svg("text", { x: W - 40, y: y(cap) - 3 }, "3 % cap"));
    series.forEach((s, k) => {
      const points = s.values.map((v, i) => `${x(i)},${y(v)}`).join(" ");
      root.append(svg("polyline", { points, fill: "none", stroke: s.color, "stroke-width": 2, opacity: k ? 0.8 : 1 }));
      root.append(svg("text", { x: pad + k * 120, y: 10, fill: s.color }, s.name));
    });
    root.append(svg("text", { x: 0, y: y(top) + 8 }, Math.round(top * 100) + "%"));
    root.append(svg("text", { x: 0, y: H }, "0"));
    root.append(svg("text", { x: pad, y: H + 14 }, queueTrend[0].day));
    root.append(svg("text", { x: W - 64, y: H + 14 }, queueTrend[queueTrend.length - 1].day));
    return root;
  }
})();
