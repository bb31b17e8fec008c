// The console's charts and the dossier list's auto-refresh. Plain JS and SVG, no build step.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const PALETTE = ["#0b5cad", "#2e8540", "#8e44ad", "#d35400", "#16a085", "#c0392b", "#7f8c8d", "#b7950b"];

function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function tooltip(node, text) {
  node.appendChild(el("title", {}, text));
  return node;
}

function localTime(ms) {
  return new Date(ms).toLocaleString("vi-VN", { timeZone: "Asia/Ho_Chi_Minh", dateStyle: "short", timeStyle: "short" });
}

function empty(container, message) {
  const note = document.createElement("div");
  note.className = "empty";
  note.textContent = message;
  container.replaceChildren(note);
}

// --- dossier list: refresh the table body in place ------------------------------------------

function autoRefresh() {
  const body = document.getElementById("dossier-rows");
  if (!body) return;
  const seconds = Number(body.dataset.refresh || 5);
  const tick = async () => {
    const url = new URL(window.location.href);
    url.searchParams.set("rows", "1");
    try {
      const response = await fetch(url, { credentials: "same-origin", redirect: "manual" });
      if (response.ok) {
        body.innerHTML = await response.text();
        const stamp = document.getElementById("updated");
        if (stamp) stamp.textContent = new Date().toLocaleTimeString("vi-VN");
      } else if (response.type === "opaqueredirect" || response.status === 401) {
        window.location.reload(); // signed out: the page itself redirects to the sign-in form
        return;
      }
    } catch (error) {
      // network hiccup: try again at the next tick
    }
    window.setTimeout(tick, seconds * 1000);
  };
  window.setTimeout(tick, seconds * 1000);
}

// --- process-control slip as a timeline -------------------------------------------------------

function drawTimeline(container, data) {
  const rows = data.slip || [];
  if (!rows.length) return empty(container, "Chưa có bước nào.");
  const now = Date.now();
  const t = (iso) => (iso ? Date.parse(iso) : null);
  const points = [];
  for (const r of rows) {
    points.push(t(r.sent_at));
    for (const key of ["due_at", "completed_at"]) if (r[key]) points.push(t(r[key]));
  }
  if (data.promised) points.push(t(data.promised));
  let t0 = Math.min(...points);
  let t1 = Math.max(...points);
  if (t1 - t0 < 60000) t1 = t0 + 60000;
  const labelWidth = 330;
  const width = Math.max(container.clientWidth || 900, 760);
  const plot = width - labelWidth - 20;
  const rowHeight = 28;
  const top = 34;
  const height = top + rows.length * rowHeight + 10;
  const x = (ms) => labelWidth + ((ms - t0) / (t1 - t0)) * plot;
  const svg = el("svg", { width, height, role: "img", class: "timeline" });

  for (let i = 0; i <= 4; i++) {
    const ms = t0 + ((t1 - t0) * i) / 4;
    svg.appendChild(el("line", { x1: x(ms), x2: x(ms), y1: top - 6, y2: height - 6, class: "axis" }));
    svg.appendChild(el("text", { x: x(ms), y: 14, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle", class: "tick" }, localTime(ms)));
  }
  const agencies = (data.labels && data.labels.agencies) || {};
  const actions = (data.labels && data.labels.actions) || {};
  rows.forEach((r, i) => {
    const y = top + i * rowHeight;
    const name = `${r.row + 1}. ${agencies[r.to_agency] || r.to_agency}: ${actions[r.action] || r.action}`;
    svg.appendChild(el("text", { x: 6, y: y + 17 }, name.length > 46 ? name.slice(0, 45) + "…" : name));
    const start = t(r.sent_at);
    const due = t(r.due_at);
    const done = t(r.completed_at);
    const end = done !== null ? done : Math.min(Math.max(now, start), t1);
    let kind = "bar-untimed";
    if (due !== null) kind = done === null ? (now > due ? "bar-late" : "bar-open") : done <= due ? "bar-ok" : "bar-late";
    const bar = el("rect", { x: x(start), y: y + 5, width: Math.max(x(end) - x(start), 3), height: rowHeight - 12, rx: 2, class: kind });
    const text = `${name}\nGiao: ${localTime(start)}\nHạn: ${due !== null ? localTime(due) : "không tính"}\nHoàn thành: ${done !== null ? localTime(done) : "chưa"}`;
    svg.appendChild(tooltip(bar, text));
    if (due !== null) svg.appendChild(tooltip(el("line", { x1: x(due), x2: x(due), y1: y + 2, y2: y + rowHeight - 4, class: "due" }), "Hạn: " + localTime(due)));
  });
  if (data.promised) {
    const p = t(data.promised);
    svg.appendChild(tooltip(el("line", { x1: x(p), x2: x(p), y1: top - 8, y2: height - 4, class: "promised" }), "Ngày hẹn trả: " + localTime(p)));
    svg.appendChild(el("text", { x: x(p) - 4, y: height - 8, "text-anchor": "end", class: "tick" }, "hẹn trả"));
  }
  container.replaceChildren(svg);
}

// --- trace as a waterfall ---------------------------------------------------------------------

function orderSpans(spans) {
  // Depth-first from the roots (no parent, or a parent we never received), children by start.
  const ids = new Set(spans.map((s) => s.trace_id + s.span_id));
  const children = new Map();
  const roots = [];
  for (const s of spans) {
    const parent = s.parent_span_id ? s.trace_id + s.parent_span_id : null;
    if (parent && ids.has(parent)) {
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(s);
    } else roots.push(s);
  }
  const ordered = [];
  const visit = (s, depth) => {
    ordered.push({ span: s, depth });
    for (const c of children.get(s.trace_id + s.span_id) || []) visit(c, depth + 1);
  };
  for (const r of roots) visit(r, 0);
  return ordered;
}

function drawWaterfall(container, spans) {
  if (!spans || !spans.length) return empty(container, "Chưa có span.");
  const start = (s) => Number(s.start_unix_nano) / 1e6;
  const end = (s) => Number(s.end_unix_nano) / 1e6;
  // One block per trace, each on its own time scale (a dossier's traces can be days apart).
  const traces = new Map();
  for (const s of spans) {
    if (!traces.has(s.trace_id)) traces.set(s.trace_id, []);
    traces.get(s.trace_id).push(s);
  }
  const blocks = [...traces.entries()]
    .map(([id, members]) => ({ id, rows: orderSpans(members), t0: Math.min(...members.map(start)), t1: Math.max(...members.map(end)) }))
    .sort((a, b) => a.t0 - b.t0);
  const services = [...new Set(spans.map((s) => s.service_name))].sort();
  const colour = (name) => PALETTE[services.indexOf(name) % PALETTE.length];
  const labelWidth = 380;
  const width = Math.max(container.clientWidth || 900, 760);
  const plot = width - labelWidth - 90;
  const rowHeight = 22;
  const headerHeight = 24;
  const top = 26;
  const height = top + blocks.reduce((sum, b) => sum + headerHeight + b.rows.length * rowHeight, 0) + 8;
  const svg = el("svg", { width, height, role: "img", class: "waterfall" });

  let legendX = 6;
  for (const name of services) {
    svg.appendChild(el("rect", { x: legendX, y: 4, width: 12, height: 12, fill: colour(name) }));
    svg.appendChild(el("text", { x: legendX + 16, y: 14 }, name));
    legendX += 30 + name.length * 7.5;
  }
  let y = top;
  for (const block of blocks) {
    const span = Math.max(block.t1 - block.t0, 1);
    const x = (ms) => labelWidth + ((ms - block.t0) / span) * plot;
    svg.appendChild(el("line", { x1: 0, x2: width, y1: y + 2, y2: y + 2, class: "axis" }));
    svg.appendChild(el("text", { x: 6, y: y + 17, class: "tick" }, `trace ${block.id} · bắt đầu ${localTime(block.t0)} · ${(block.t1 - block.t0).toFixed(1)} ms`));
    y += headerHeight;
    for (const { span: s, depth } of block.rows) {
      const label = `${s.service_name} · ${s.name}`;
      const room = 48 - depth * 2;
      svg.appendChild(el("text", { x: 6 + depth * 12, y: y + 15 }, label.length > room ? label.slice(0, room - 1) + "…" : label));
      const duration = end(s) - start(s);
      const bar = el("rect", {
        x: x(start(s)), y: y + 4, width: Math.max(x(end(s)) - x(start(s)), 2), height: rowHeight - 8, rx: 2,
        fill: s.status_code === "ERROR" ? "#c62828" : colour(s.service_name),
        "data-service": s.service_name, class: "span",
      });
      const attrs = Object.entries(s.attributes || {}).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join("\n");
      svg.appendChild(tooltip(bar, `${label}\n${duration.toFixed(2)} ms · ${s.kind}\nspan ${s.span_id}${s.parent_span_id ? " ← " + s.parent_span_id : ""}\n${attrs}`));
      svg.appendChild(el("text", { x: Math.min(x(end(s)) + 4, width - 80), y: y + 15, class: "tick" }, `${duration < 1 ? duration.toFixed(2) : duration.toFixed(1)} ms`));
      y += rowHeight;
    }
  }
  container.replaceChildren(svg);
}

// --- on-time rates as stacked bars -----------------------------------------------------------

function drawRates(container, groups) {
  if (!groups.length) return empty(container, "Chưa có dữ liệu trong kỳ.");
  const labelWidth = 360;
  const width = Math.max(container.clientWidth || 900, 700);
  const plot = width - labelWidth - 170;
  const rowHeight = 30;
  const height = groups.length * rowHeight + 12;
  const svg = el("svg", { width, height, role: "img", class: "rates" });
  groups.forEach((g, i) => {
    const y = 6 + i * rowHeight;
    const label = g.label.length > 50 ? g.label.slice(0, 49) + "…" : g.label;
    svg.appendChild(el("text", { x: 6, y: y + 17 }, label));
    const okWidth = g.total ? (plot * g.on_time) / g.total : 0;
    svg.appendChild(tooltip(el("rect", { x: labelWidth, y: y + 3, width: okWidth, height: rowHeight - 10, class: "bar-ok" }), `${g.on_time} đúng hạn`));
    svg.appendChild(tooltip(el("rect", { x: labelWidth + okWidth, y: y + 3, width: plot - okWidth, height: rowHeight - 10, class: "bar-late" }), `${g.late} trễ hạn`));
    const percent = g.percent === null ? "—" : `${g.percent.toFixed(1).replace(".", ",")} %`;
    svg.appendChild(el("text", { x: labelWidth + plot + 8, y: y + 17 }, `${percent} (${g.on_time}/${g.total})`));
  });
  container.replaceChildren(svg);
}

document.addEventListener("DOMContentLoaded", () => {
  autoRefresh();
  const data = document.getElementById("chart-data");
  if (data) {
    const chart = JSON.parse(data.textContent);
    const timeline = document.getElementById("timeline");
    if (timeline) drawTimeline(timeline, chart);
    const waterfall = document.getElementById("waterfall");
    if (waterfall) drawWaterfall(waterfall, chart.spans);
  }
  for (const container of document.querySelectorAll("[data-rates]")) {
    drawRates(container, JSON.parse(container.dataset.rates));
  }
});
