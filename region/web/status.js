// The status page: polls /status/data once a second and draws what it
// returns. No framework, no build step.
"use strict";

const HISTORY_MS = 5 * 60 * 1000;
const COLORS = { "us-east": "#2e90fa", "eu-west": "#12b76a", "ap-south": "#f79009" };
const FALLBACK = ["#7a5af8", "#ee46bc", "#667085", "#0e9384"];
const history = {}; // "observer>origin" -> [{t, lag, rpo}]
let samples = 0;

function color(name) {
  if (COLORS[name]) return COLORS[name];
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return FALLBACK[h % FALLBACK.length];
}

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
}

function secs(v) { return v >= 10 ? v.toFixed(0) + " s" : v.toFixed(2) + " s"; }

function renderRegions(data) {
  const sw = data.switch;
  const health = {};
  if (sw && sw.regions) for (const r of sw.regions) health[r.name] = r;
  const box = document.getElementById("regions");
  box.replaceChildren();
  for (const r of data.regions) {
    const ready = r.ready && r.ready.ready;
    const h = health[r.name];
    let cls = "bad", state = "UNREACHABLE";
    if (r.reachable) { cls = ready ? "ok" : "warn"; state = ready ? "ready" : "NOT READY"; }
    const items = [];
    if (h) {
      items.push(el("li", {}, "switch: " + (h.healthy ? "healthy" : "DOWN") + (h.drained ? ", DRAINED" : "")));
      if (h.last_error) items.push(el("li", {}, "last check error: " + h.last_error));
    }
    if (r.error) items.push(el("li", {}, r.error));
    if (r.ready && r.ready.checks) {
      for (const [k, v] of Object.entries(r.ready.checks)) if (v !== "ok") items.push(el("li", {}, k + ": " + v));
    }
    if (r.view) items.push(el("li", {}, "alias register " + r.view.alias_register + ", durability " + r.view.durability));
    box.append(el("div", { class: "card " + cls, "data-region": r.name },
      el("h3", {}, r.name), el("div", { class: "state" }, state), el("div", { class: "muted" }, r.url || ""), el("ul", {}, ...items)));
  }
}

function renderSwitch(data) {
  const tbody = document.querySelector("#answers tbody");
  tbody.replaceChildren();
  const meta = document.getElementById("switch-meta");
  const sw = data.switch;
  if (!sw) {
    meta.textContent = "switch unavailable: " + (data.switch_error || "no answer");
    return;
  }
  meta.textContent = "zone " + sw.zone + ", TTL " + sw.ttl_seconds + " s";
  for (const a of sw.answers || []) {
    const moved = a.region !== a.clients;
    tbody.append(el("tr", { "data-clients": a.clients }, el("td", {}, a.clients),
      el("td", moved ? { class: "warn" } : {}, moved ? a.region.toUpperCase() : a.region), el("td", {}, a.addr), el("td", {}, a.why)));
  }
  const ul = document.getElementById("transitions");
  ul.replaceChildren();
  for (const t of (sw.transitions || []).slice(-10).reverse()) {
    ul.append(el("li", {}, new Date(t.time).toLocaleTimeString() + "  " + t.region + " " + t.what + (t.detail ? " (" + t.detail + ")" : "")));
  }
}

function record(data) {
  const now = Date.parse(data.time) || Date.now();
  for (const r of data.regions) {
    if (!r.view) continue;
    for (const o of r.view.origins) {
      if (o.local) continue;
      const key = r.name + ">" + o.origin;
      const h = history[key] || (history[key] = []);
      h.push({ t: now, lag: o.lag_seconds, rpo: o.rpo_seconds, known: o.rpo_known });
      while (h.length && h[0].t < now - HISTORY_MS) h.shift();
    }
  }
  samples++;
}

function renderLagTable(data) {
  const tbody = document.querySelector("#lag tbody");
  tbody.replaceChildren();
  for (const r of data.regions) {
    if (!r.view) continue;
    for (const o of r.view.origins) {
      if (o.local) continue;
      let live = o.mirror_active ? "live" : o.mirror_copying ? "CATCHING UP" : "INACTIVE";
      if (o.origin_behind) live += " ORIGIN BEHIND"; // the origin lost events its mirror holds
      if (o.origin_diverged) live += " DIVERGED #" + o.diverged_at; // and took others at their sequences
      const lost = o.origin_behind || o.origin_diverged;
      tbody.append(el("tr", {}, el("td", {}, r.name), el("td", {}, o.origin),
        el("td", o.mirror_active && !lost ? {} : { class: o.mirror_copying && !lost ? "warn" : "bad" }, live),
        el("td", {}, String(o.lag_events)), el("td", {}, secs(o.lag_seconds)),
        el("td", o.rpo_known ? {} : { class: "warn" }, o.rpo_known ? String(o.rpo_events) : "UNKNOWN"),
        el("td", o.rpo_known ? {} : { class: "warn" }, o.rpo_known ? secs(o.rpo_seconds) : "UNKNOWN")));
    }
  }
}

function renderCharts(data) {
  const box = document.getElementById("charts");
  for (const r of data.regions) {
    let wrap = box.querySelector('[data-observer="' + r.name + '"]');
    if (!wrap) {
      const canvas = el("canvas", { "data-region": r.name, width: "420", height: "180" });
      wrap = el("div", { class: "chart", "data-observer": r.name }, el("h3", {}, "seen from " + r.name), canvas, el("div", { class: "legend" }));
      box.append(wrap);
    }
    drawChart(wrap, r.name);
  }
}

function drawChart(wrap, observer) {
  const canvas = wrap.querySelector("canvas");
  const dpr = window.devicePixelRatio || 1;
  const W = 420, H = 180;
  if (canvas.width !== W * dpr) { canvas.width = W * dpr; canvas.height = H * dpr; canvas.style.width = W + "px"; canvas.style.height = H + "px"; }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, W, H);
  const pad = { l: 44, r: 8, t: 8, b: 22 };
  const series = Object.entries(history).filter(([k]) => k.startsWith(observer + ">"));
  const now = Date.now();
  let max = 1, oldest = now;
  for (const [, pts] of series) for (const p of pts) { max = Math.max(max, p.lag, p.rpo); oldest = Math.min(oldest, p.t); }
  max = Math.ceil(max * 1.1);
  // The time axis grows with the data from one minute up to five.
  const span = Math.min(HISTORY_MS, Math.max(60000, now - oldest));
  const x = (t) => pad.l + (W - pad.l - pad.r) * (1 - (now - t) / span);
  const y = (v) => H - pad.b - (H - pad.t - pad.b) * Math.min(v, max) / max;
  ctx.strokeStyle = "#eaecf0"; ctx.fillStyle = "#667085"; ctx.font = "11px system-ui, sans-serif"; ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4, yy = y(v);
    ctx.beginPath(); ctx.moveTo(pad.l, yy); ctx.lineTo(W - pad.r, yy); ctx.stroke();
    ctx.fillText(v.toFixed(v < 10 ? 1 : 0) + " s", 4, yy + 4);
  }
  ctx.fillText("-" + Math.round(span / 1000) + " s", pad.l, H - 6); ctx.fillText("now", W - pad.r - 22, H - 6);
  let drawn = 0;
  const legend = wrap.querySelector(".legend");
  legend.replaceChildren();
  for (const [key, pts] of series) {
    const origin = key.split(">")[1];
    const c = color(origin);
    legend.append(el("span", {}, el("i", { style: "background:" + c }), origin));
    for (const [field, dash] of [["lag", []], ["rpo", [5, 4]]]) {
      ctx.strokeStyle = c; ctx.lineWidth = 2; ctx.setLineDash(dash);
      ctx.beginPath();
      pts.forEach((p, i) => { const X = x(p.t), Y = y(p[field]); if (i === 0) ctx.moveTo(X, Y); else ctx.lineTo(X, Y); });
      ctx.stroke();
      drawn += pts.length;
    }
    ctx.setLineDash([]);
  }
  if (!series.length) { ctx.fillStyle = "#98a2b3"; ctx.fillText("no data from this region", pad.l + 10, H / 2); }
  canvas.dataset.points = String(drawn);
}

async function poll() {
  try {
    const resp = await fetch("/status/data", { cache: "no-store" });
    const data = await resp.json();
    record(data);
    renderRegions(data);
    renderSwitch(data);
    renderLagTable(data);
    renderCharts(data);
    document.getElementById("meta").textContent = "served by " + data.served_by + " at " + new Date(data.time).toLocaleTimeString() + " (refreshed every second)";
    document.body.dataset.samples = String(samples);
  } catch (err) {
    document.getElementById("meta").textContent = "status unavailable: " + err;
  }
  setTimeout(poll, 1000);
}

poll();
