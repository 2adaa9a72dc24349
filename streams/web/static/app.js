// The incident page: the listing comes over a server-sent event stream, the
// selected incident is fetched whenever the board changes. No reload, no build.
"use strict";

const token = new URLSearchParams(location.hash.slice(1)).get("token");
const auth = token ? { Authorization: `Bearer ${token}` } : {};
const SVG = "http://www.w3.org/2000/svg";
let selected = null;  // the incident shown, by id
let graph = null;     // the dependency graph, fetched once
let shownVersion = -1;
const CHARTS = 24;    // evidence charts drawn at most; the API has them all

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

function clock(t) { return new Date(t * 1000).toISOString().slice(11, 19) + " UTC"; }
function age(s) { return s < 90 ? `${Math.round(s)} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`; }
function few(items, n = 8) { return items.slice(0, n).join(", ") + (items.length > n ? ` and ${items.length - n} more` : ""); }
function count(n) { return Math.round(n).toLocaleString("en-US"); }
function usd(n) { return "$" + Math.round(n).toLocaleString("en-US"); }

async function getJson(path) {
  const response = await fetch(path, { headers: auth, cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function say(state, text) {
  const status = $("status");
  status.dataset.state = state;
  status.textContent = text;
}

function showHealth(health, eventTime) {
  const at = eventTime ? ` · event time ${clock(eventTime)}` : "";
  if (health.status === "lagging") say("lagging", `Lagging: ${count(health.lag || 0)} messages behind${at}`);
  else if (health.status === "silent") {
    const quiet = [...(health.silent_sources || []), ...(health.silent_entities || [])];
    say("silent", `No telemetry from ${few(quiet, 6)}${at}`);
  }
  else say("ok", `Live${at}`);
}

function showListing(listing) {
  showHealth(listing.health || {}, listing.event_time);
  const list = $("incidents");
  const items = listing.incidents;
  $("none").hidden = items.some((i) => i.status === "open");
  if (selected === null && items.length) selected = items[0].id;
  // Redrawn whole; the keyboard's place is kept by the incident it was on.
  const focused = document.activeElement?.closest?.("#incidents button")?.dataset.id;
  list.replaceChildren(...items.map((i) => {
    const button = el("button", { type: "button", class: `sev-${i.sev} ${i.status}`, "data-id": i.id,
      "aria-current": String(i.id === selected) });
    const cause = i.root_cause ? `root cause ${i.root_cause}${i.root_cause_region ? " in " + i.root_cause_region : ""}` : "root cause not yet known";
    button.append(el("span", { class: "sev" }, `SEV-${i.sev}`), ` ${i.status === "open" ? "" : "(" + i.status + ") "}${i.title}`,
      el("span", { class: "meta" }, `${cause} · open ${age(i.age_s)}${i.silenced ? ` · silenced (${i.silenced})` : ""}`));
    button.addEventListener("click", () => { selected = i.id; shownVersion = -1; showListing(listing); refresh(listing.version); });
    return el("li", {}, button);
  }));
  if (focused) list.querySelector(`button[data-id="${CSS.escape(focused)}"]`)?.focus();
}

async function refresh(version) {
  if (selected === null || version === shownVersion) return;
  shownVersion = version;
  try {
    if (graph === null) graph = await getJson("/api/graph");
    showIncident(await getJson(`/api/incidents/${encodeURIComponent(selected)}`));
  } catch (error) {
    shownVersion = -1;
    say("down", `Could not read the incident: ${error.message}`);
  }
}

function showIncident(inc) {
  $("incident").hidden = false;
  $("incident-heading").textContent = `SEV-${inc.sev} ${inc.id}`;
  $("incident-heading").className = `sev-${inc.sev}`;
  const where = inc.root_cause_region ? ` in ${inc.root_cause_region}` : "";
  $("summary").textContent = `${inc.status === "open" ? "Open" : inc.status} for ${age(inc.age_s)} (since ${clock(inc.opened_at)}): ` +
    `${inc.title}. Probable root cause: ${inc.root_cause || "not yet known"}${where}.${inc.silenced ? ` Silenced by ${inc.silenced}.` : ""}`;
  const impact = inc.impact || {};
  $("impact").replaceChildren(...[
    ["users affected now", count(impact.users_affected || 0)],
    ["revenue lost per minute", usd(impact.revenue_usd_per_min || 0)],
    ["revenue lost in total", usd(impact.revenue_usd_total || 0)],
    ["share of users failing", `${Math.round(100 * (impact.share || 0))}%`],
  ].map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v))));
  drawGraph(inc);
  $("candidates").replaceChildren(...(inc.root_cause_candidates || []).map((c) =>
    el("li", {}, el("strong", {}, c.node + (c.region ? ` in ${c.region}` : "")),
      ` (explains ${Math.round(100 * c.score)}%): ${(c.reasons || []).join("; ")}`,
      el("span", { class: "meta" }, `evidence: ${few(c.evidence || []) || "none"}`))));
  const series = inc.evidence_series || [];
  $("evidence").replaceChildren(...series.slice(0, CHARTS).map(chart));
  if (series.length > CHARTS) $("evidence").append(el("p", {}, `and ${series.length - CHARTS} more series (in /api/incidents/${inc.id})`));
  const warnings = (inc.warnings || []).map((w) => el("li", {},
    `${w.entity} ${w.metric}: ` + (w.eta ? `runs out at ${clock(w.eta)} (in ${age(Math.max(0, w.eta - w.at))})` : "creeping from its baseline")));
  const gaps = (inc.gaps || []).map((g) => el("li", {}, `${g.entity}: no telemetry since ${clock(g.start)}`));
  $("warnings").replaceChildren(...warnings, ...gaps);
  if (!warnings.length && !gaps.length) $("warnings").append(el("li", {}, "None."));
  $("timeline").replaceChildren(...(inc.timeline || []).map((t) =>
    el("li", {}, el("time", { datetime: new Date(t.at * 1000).toISOString() }, clock(t.at)), el("strong", {}, t.kind), ` ${t.text}`)));
  $("runbook").textContent = inc.runbook || "No runbook.";
}

function drawGraph(inc) {
  const root = inc.root_cause, hit = new Set(inc.blast_radius || []);
  const nodes = graph.nodes, byId = Object.fromEntries(nodes.map((n) => [n.id, n]));
  const depth = {};
  const depthOf = (id) => depth[id] ??= 1 + Math.max(-1, ...byId[id].depends_on.filter((d) => byId[d]).map(depthOf));
  nodes.forEach((n) => depthOf(n.id));
  const top = Math.max(...Object.values(depth));
  const layers = [];
  nodes.forEach((n) => (layers[top - depth[n.id]] ??= []).push(n.id));
  const W = 900, rowH = 56, boxW = 104, boxH = 26, at = {};
  layers.forEach((layer, row) => layer.forEach((id, i) => { at[id] = [((i + 0.5) * W) / layer.length, 20 + row * rowH]; }));
  const svg = el("svg:svg", { viewBox: `0 0 ${W} ${layers.length * rowH}`, role: "img",
    "aria-label": `Dependency graph: root cause ${root || "not known"}; blast radius ${[...hit].join(", ") || "none"}` });
  nodes.forEach((n) => n.depends_on.filter((d) => at[d]).forEach((d) =>
    svg.append(el("svg:line", { x1: at[n.id][0], y1: at[n.id][1] + boxH / 2, x2: at[d][0], y2: at[d][1] - boxH / 2 }))));
  nodes.forEach((n) => {
    const role = n.id === root ? "root" : hit.has(n.id) ? "hit" : "calm";
    const mark = { root: "◆ ", hit: "▲ ", calm: "" }[role];
    const [x, y] = at[n.id];
    svg.append(el("svg:g", { class: `node ${role}` },
      el("svg:rect", { x: x - boxW / 2, y: y - boxH / 2, width: boxW, height: boxH, rx: 4 }),
      el("svg:text", { x, y }, mark + n.id)));
  });
  $("graph").replaceChildren(svg);
}

function chart(s) {
  const pts = s.points || [];
  const values = pts.map((p) => p[1]).concat(s.baseline == null ? [] : [s.baseline]);
  const lo = Math.min(...values), hi = Math.max(...values), W = 240, H = 60;
  const t0 = pts.length ? pts[0][0] : 0, t1 = pts.length ? pts[pts.length - 1][0] : 1;
  const x = (t) => (t1 > t0 ? ((t - t0) / (t1 - t0)) * W : W / 2);
  const y = (v) => (hi > lo ? H - 4 - ((v - lo) / (hi - lo)) * (H - 8) : H / 2);
  const last = pts.length ? pts[pts.length - 1][1] : null;
  const caption = `${s.entity} ${s.metric} (${s.kind})` + (last === null ? ": no points yet" : `: now ${last.toPrecision(3)}`) +
    (s.baseline == null ? "" : `, baseline ${Number(s.baseline).toPrecision(3)}`);
  const svg = el("svg:svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": caption });
  if (s.baseline != null) svg.append(el("svg:line", { class: "baseline", x1: 0, x2: W, y1: y(s.baseline), y2: y(s.baseline) }));
  if (pts.length) svg.append(el("svg:polyline", { points: pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ") }));
  return el("figure", { class: "chart" }, svg, el("figcaption", {}, caption));
}

// The stream: text/event-stream read through fetch, so that a token can go in a header.
async function follow() {
  for (;;) {
    try {
      const response = await fetch("/api/stream", { headers: auth, cache: "no-store" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const message = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = message.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
          if (data) {
            const listing = JSON.parse(data);
            showListing(listing);
            await refresh(listing.version);
          }
        }
      }
      say("down", "The server closed the stream; reconnecting…");
    } catch (error) {
      say("down", `Not connected (${error.message}); retrying…`);
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

follow();
