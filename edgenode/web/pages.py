"""The status page's HTML, CSS and script: no external assets (the unit has no internet), large
type and high contrast for a phone in sunlight. Pages are shells that the script fills from
/api/status and the live stream."""

from __future__ import annotations

from html import escape

PAGES = {"overview": "Overview", "sky": "Sky", "selftest": "Self-test", "logs": "Logs"}
PATHS = {"overview": "/", "sky": "/sky", "selftest": "/selftest", "logs": "/logs"}

BODIES = {
    "overview": '<section id="overview"><p class="muted">asking the daemon...</p></section>',
    "sky": ('<section><svg id="sky" viewBox="-200 -200 400 400" role="img" '
            'aria-label="tracks around the mast, north up"></svg>'
            '<p class="muted">North up; rings every 100 m; the mast heading in blue; acoustic '
            'bearings of the last seconds as thin rays.</p><ul id="tracks"></ul></section>'),
    "selftest": '<section id="selftest"></section>',
    "logs": ('<section><label>Level <select id="level"><option>debug</option>'
             '<option selected>info</option><option>warning</option><option>error</option>'
             '</select></label><pre id="log"></pre></section>'),
}

LOGIN = ('<form method="post" action="/login" id="login"><label>Technician password '
         '<input type="password" name="password" autocomplete="current-password" required>'
         '</label><button type="submit">Log in</button></form>')


def render(name: str, *, logged_in: bool) -> str:
    nav = "".join(f'<a href="{PATHS[k]}"{" aria-current=page" if k == name else ""}>{v}</a>'
                  for k, v in PAGES.items())
    body = BODIES[name]
    if name == "selftest":
        body = body.replace("></section>", (
            '><button id="run-selftest">Run self-test</button><div id="checks"></div>'
            '<form method="post" action="/logout"><button>Log out</button></form></section>'
            if logged_in else ">" + LOGIN + "</section>"))
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>edgenode: {escape(PAGES[name])}</title>"
            f'<link rel="stylesheet" href="/assets/app.css"></head>'
            f'<body data-page="{name}"><header><strong id="node-name">edgenode</strong>'
            f'<span id="link-state"></span></header><nav>{nav}</nav><main>{body}</main>'
            f'<script src="/assets/app.js"></script></body></html>')


CSS = """
html { font: 20px/1.4 system-ui, sans-serif; background: #fff; color: #000; }
body { margin: 0; }
header { background: #000; color: #fff; padding: 0.5rem 0.75rem; display: flex;
         justify-content: space-between; gap: 0.5rem; font-size: 1.1rem; }
nav { display: flex; border-bottom: 3px solid #000; }
nav a { flex: 1; text-align: center; padding: 0.6rem 0.2rem; color: #000; font-weight: 700;
        text-decoration: none; }
nav a[aria-current] { background: #000; color: #fff; }
main { padding: 0.75rem; }
table { border-collapse: collapse; width: 100%; }
td, th { text-align: left; padding: 0.35rem 0.3rem; border-bottom: 1px solid #777;
         vertical-align: top; }
.ok, .PASS { color: #064; font-weight: 700; }
.degraded, .starting, .WARN, .SKIP { color: #850; font-weight: 700; }
.failed, .FAIL { color: #b00; font-weight: 700; }
.muted { color: #444; font-size: 0.85rem; }
.hint { font-size: 0.85rem; }
.check { border-bottom: 1px solid #777; padding: 0.4rem 0; }
button, input, select { font: inherit; padding: 0.5rem 0.8rem; border: 2px solid #000;
                        background: #fff; margin: 0.25rem 0; }
button { background: #000; color: #fff; font-weight: 700; }
pre { font-size: 0.7rem; white-space: pre-wrap; word-break: break-word; }
svg { width: 100%; max-width: 32rem; display: block; margin: auto; }
svg .ring { fill: none; stroke: #999; stroke-width: 1; }
svg .heading { stroke: #03c; stroke-width: 3; }
svg .ray { stroke: #850; stroke-width: 1; opacity: 0.6; }
svg .track { stroke: #000; stroke-width: 2; }
svg .drone { fill: #b00; }
svg .other { fill: #fff; }
svg text { font-size: 14px; font-weight: 700; }
"""

JS = r"""
"use strict";
const page = document.body.dataset.page;
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g,
  (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const fmtUptime = (s) =>
  s == null ? "?" : `${Math.floor(s / 3600)} h ${Math.floor(s % 3600 / 60)} min`;

function header(st) {
  if (!st.ok) { $("link-state").textContent = "daemon not answering"; return; }
  const n = st.node || {};
  $("node-name").textContent = `${n.site}/${n.id}`;
  const link = st.link || {};
  $("link-state").textContent = link.connected ? "broker: connected" : "broker: DOWN";
}

function overview(st) {
  if (!st.ok) { $("overview").innerHTML = `<p class="failed">${esc(st.error)}</p>`; return; }
  const n = st.node || {}, link = st.link || {}, eff = st.effector || {};
  const rows = [
    ["Node", `${n.site}/${n.id} (${n.hardware})`], ["Software", st.version],
    ["Up", fmtUptime(st.uptime_s)],
    ["Broker", `${link.connected ? "connected" : "DOWN"}, backlog ${link.backlog ?? "?"}`],
    ["Effector", eff.state], ["Key switch", eff.key_switch ?? "unknown"]];
  let html = "<table id=\"identity\">" + rows.map(([k, v]) =>
    `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join("") + "</table><h2>Parts</h2>";
  html += "<table id=\"parts\">" + Object.entries(st.stages || {}).map(([name, s]) =>
    `<tr data-part="${esc(name)}"><th>${esc(name)}</th><td class="${esc(s.state)}">` +
    `${esc(s.state)}</td><td>${esc(s.reason)}</td></tr>`).join("") + "</table>";
  $("overview").innerHTML = html;
}

function polar(azDeg, r) {
  const a = azDeg * Math.PI / 180;
  return [r * Math.sin(a), -r * Math.cos(a)];
}

function sky(st) {
  if (!st.ok) return;
  const svg = $("sky"), heading = (st.node || {}).mast_heading_deg || 0;
  const scale = 180 / 500;  // 500 m at the edge
  let g = "";
  for (const m of [100, 200, 300, 400, 500]) g += `<circle class="ring" r="${m * scale}"/>`;
  g += `<text x="-5" y="-185">N</text>`;
  const [hx, hy] = polar(heading, 60);
  g += `<line class="heading" x1="0" y1="0" x2="${hx}" y2="${hy}"/>`;
  const now = (st.bearings || []).reduce((m, b) => Math.max(m, b[0]), 0);
  for (const [t, az] of st.bearings || []) {
    if (now - t > 10) continue;
    const [x, y] = polar(az, 180);
    g += `<line class="ray" x1="0" y1="0" x2="${x}" y2="${y}"/>`;
  }
  let list = "";
  for (const tr of st.tracks || []) {
    const cls = (tr.classification || [{type: "unknown", confidence: 0}])[0];
    const az = tr.azimuth_deg ? tr.azimuth_deg.value : null;
    if (az == null) continue;
    const rng = tr.range_m ? tr.range_m.value : null;
    const [x, y] = polar(az, rng == null ? 175 : Math.min(rng * scale, 175));
    const kind = cls.type === "drone" ? "drone" : "other";
    const minor = cls.type === "clutter";  // the mast's own echoes: drawn small, unlabelled
    g += `<circle class="track ${kind}" cx="${x}" cy="${y}" r="${minor ? 3 : 8}"` +
         ` data-bearing="${az}" data-t="${tr.t}"` +
         ` data-class="${esc(cls.type)}" data-id="${esc(tr.object_id)}"/>` +
         (minor ? "" : `<text x="${x + 10}" y="${y - 10}">${esc(cls.type)}</text>`);
    const pct = Math.round(cls.confidence * 100);
    list += `<li data-id="${esc(tr.object_id)}">${esc(cls.type)} ${pct} %,` +
            ` bearing ${az.toFixed(1)} deg${rng == null ? "" : `, ${Math.round(rng)} m`}</li>`;
  }
  svg.innerHTML = g;
  $("tracks").innerHTML = list || "<li>no tracks</li>";
}

function checks(report) {
  // One card per check: a phone is too narrow for a five-column table.
  $("checks").innerHTML = (report.checks || []).map((c) => {
    const result = c.result ||
      (c.state === "ok" ? "PASS" : c.state === "failed" ? "FAIL" : c.state);
    const value = c.value ?? (c.detail ? JSON.stringify(c.detail) : "");
    return `<div class="check" data-check="${esc(c.name)}"><div><strong>${esc(c.name)}</strong>` +
      ` <span class="${esc(result)}">${esc(result)}</span></div>` +
      (value !== "" ? `<div>${esc(value)} ${esc(c.unit || "")}</div>` : "") +
      (c.expected ? `<div class="muted">expected ${esc(c.expected)}</div>` : "") +
      (c.hint || c.reason ? `<div class="hint">${esc(c.hint || c.reason)}</div>` : "") +
      "</div>";
  }).join("");
}

async function runSelftest() {
  $("checks").innerHTML = "<p>running...</p>";
  const r = await fetch("/api/selftest", {method: "POST", credentials: "same-origin"});
  const fail = (text) => {
    $("checks").innerHTML = `<p class="failed">${esc(text)}</p>`;
  };
  if (!r.ok) { fail(await r.text()); return; }
  const answer = await r.json();
  if (!answer.report) { fail(answer.error); return; }
  checks(answer.report);
}

async function logs() {
  const r = await fetch(`/api/logs?level=${$("level").value}`);
  const answer = await r.json();
  $("log").textContent = answer.ok ? answer.lines.join("\n") : answer.error;
}

function show(st) {
  header(st);
  if (page === "overview") overview(st);
  if (page === "sky") sky(st);
}

fetch("/api/status").then((r) => r.json()).then(show);
if (page === "overview" || page === "sky") {
  const stream = new EventSource("/api/stream");
  stream.addEventListener("status", (e) => show(JSON.parse(e.data)));
}
if (page === "selftest" && $("run-selftest")) {
  $("run-selftest").addEventListener("click", runSelftest);
}
if (page === "logs") { $("level").addEventListener("change", logs); logs(); }
"""

ASSETS = {"app.js": ("application/javascript", JS), "app.css": ("text/css", CSS)}
