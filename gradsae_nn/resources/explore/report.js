"use strict";
// The run's data is the JSON in <script id="data">; everything below renders it. No network.
const DATA = JSON.parse(document.getElementById("data").textContent);
const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
};
const fmt = (x) => (x === null || x === undefined || Number.isNaN(x)) ? "—" :
  (Math.abs(x) >= 100 || x === 0 ? x.toFixed(0) : Math.abs(x) >= 0.01 ? x.toPrecision(3) : x.toExponential(2));

function half(bits) {  // IEEE 754 binary16 → number
  const s = bits & 0x8000 ? -1 : 1, e = (bits >> 10) & 0x1f, f = bits & 0x3ff;
  if (e === 0) return s * Math.pow(2, -14) * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * Math.pow(2, e - 15) * (1 + f / 1024);
}
function decode(enc) {  // {"shape": [n, u], "float16": base64} → array of n rows of u numbers
  const bin = atob(enc.float16), [n, u] = enc.shape, rows = [];
  for (let i = 0; i < n; i++) {
    const row = [];
    for (let j = 0; j < u; j++) { const k = 2 * (i * u + j); row.push(half(bin.charCodeAt(k) | (bin.charCodeAt(k + 1) << 8))); }
    rows.push(row);
  }
  return rows;
}

function wordDiff(before, after) {  // LCS over words: spans marked inserted / deleted
  const a = before.split(/\s+/).filter(Boolean), b = after.split(/\s+/).filter(Boolean);
  const L = Array.from({ length: a.length + 1 }, () => new Array(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) for (let j = b.length - 1; j >= 0; j--)
    L[i][j] = a[i] === b[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const out = el("span"); let i = 0, j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) { out.append(a[i] + " "); i++; j++; }
    else if (j < b.length && (i >= a.length || L[i][j + 1] >= L[i + 1][j])) { out.append(el("span", { class: "ins" }, b[j]), " "); j++; }
    else { out.append(el("span", { class: "del" }, a[i]), " "); i++; }
  }
  return out;
}

function showSection(name) {
  document.querySelectorAll("nav button").forEach((b) => b.classList.toggle("active", b.dataset.section === name));
  document.querySelectorAll("main section").forEach((s) => s.classList.toggle("active", s.id === name));
}

function renderOverview() {
  const sec = $("#overview");
  const cfg = el("table", {}, el("tr", {}, el("th", {}, "option"), el("th", {}, "value")));
  for (const [k, v] of Object.entries(DATA.config)) cfg.append(el("tr", {}, el("td", {}, k), el("td", {}, JSON.stringify(v))));
  sec.append(el("h2", {}, "Configuration"), cfg);
  const summary = el("div", { class: "summary" }); summary.innerHTML = DATA.summary_html; sec.append(summary);
  const plots = el("div", { class: "plots" });
  for (const p of DATA.plots) plots.append(el("h3", {}, p.name), el("img", { src: p.uri, alt: p.name }));
  sec.append(plots);
}

function changed(ex) { return Object.entries(ex.outputs).some(([k, o]) => k !== "none" && o.prediction !== ex.outputs.none?.prediction); }

function renderIndex() {
  const list = $("#index-list"), query = $("#search").value.toLowerCase(), filter = $("#filter").value;
  list.replaceChildren();
  let shown = 0;
  for (const ex of DATA.examples) {
    const isChanged = changed(ex);
    if (query && !(ex.question + " " + ex.answer).toLowerCase().includes(query)) continue;
    const correct = (ex.outputs.none?.em ?? 0) === 1;
    if ((filter === "changed" && !isChanged) || (filter === "unchanged" && isChanged)) continue;
    if ((filter === "correct" && !correct) || (filter === "wrong" && correct)) continue;
    shown++;
    list.append(el("div", { class: "example-row", "data-id": ex.id, onclick: () => renderExample(ex) },
      ex.question, el("div", { class: "meta" }, `answer: ${ex.answer} `,
        el("span", { class: "badge" + (isChanged ? " changed" : "") }, isChanged ? "changed" : "unchanged"))));
  }
  $("#index-count").textContent = `${shown} of ${DATA.examples.length} examples`;
}

function shade(ex, column, mode) {
  const values = (mode === "activation" ? ex._act : ex._contrib).map((row) => row[column]);
  const max = Math.max(1e-12, ...values.map(Math.abs));
  document.querySelectorAll("#tokens .tok").forEach((span) => {
    const i = Number(span.dataset.index) - ex.offset;
    const v = i >= 0 && i < values.length ? values[i] : null;
    const alpha = v === null ? 0 : Math.sqrt(Math.abs(v) / max);  // √ so that small values still show
    span.style.backgroundColor = v === null ? "" : `rgba(${mode === "activation" ? "9, 105, 218" : "207, 34, 46"}, ${alpha.toFixed(3)})`;
    span.title = v === null ? "not scored" : `${mode} ${fmt(v)}`;
  });
  $("#legend").textContent = `latent ${ex.latents[column]}: ${mode === "activation" ? "activation h" : "contribution relu(∂T/∂h·h)"} per token; opacity ∝ √(value / ${fmt(max)}), the largest; ↵ marks a line break`;
}

function renderExample(ex) {
  document.querySelectorAll(".example-row").forEach((r) => r.classList.toggle("selected", r.dataset.id === ex.id));
  const d = $("#detail"); d.replaceChildren();
  d.append(el("h2", {}, ex.question), el("div", {}, "gold: ", (ex.golds || []).join(" | "), " — model: ", el("b", {}, ex.answer)));
  if (!ex.latents) { d.append(el("p", {}, "No token data for this example (tokens.jsonl).")); }
  else {
    if (!ex._contrib) { ex._contrib = decode(ex.contribution); ex._act = decode(ex.activation); }
    const mode = () => $("input[name=mode]:checked").value;
    const toggle = el("div", { class: "toggle" },
      el("label", {}, el("input", { type: "radio", name: "mode", value: "contribution", checked: "checked", onchange: () => shade(ex, Number($(".latent-row.selected").dataset.column), mode()) }), " contribution"),
      el("label", {}, el("input", { type: "radio", name: "mode", value: "activation", onchange: () => shade(ex, Number($(".latent-row.selected").dataset.column), mode()) }), " activation"));
    const table = el("table", { id: "latents" }, el("tr", {}, ...["latent", "GradSAE score", "mean activation", "activation at last token", "rank GradSAE", "rank baseline", "rank attribution"].map((h) => el("th", {}, h))));
    ex.latents.forEach((c, j) => {
      const link = DATA.neuronpedia ? el("a", { href: DATA.neuronpedia.replace("{latent}", c), target: "_blank" }, String(c)) : String(c);
      const row = el("tr", { class: "latent-row", "data-column": j, "data-latent": c, onclick: () => {
        document.querySelectorAll(".latent-row").forEach((r) => r.classList.toggle("selected", r === row));
        shade(ex, j, mode()); renderContexts(c);
      } }, el("td", {}, link), el("td", {}, fmt(ex.gradsae[j])), el("td", {}, fmt(ex.mean_activation[j])),
        el("td", {}, fmt(ex.last_activation[j])), el("td", {}, ex.ranks.gradsae[j]), el("td", {}, ex.ranks.baseline[j]),
        el("td", {}, ex.ranks.attribution ? ex.ranks.attribution[j] : "—"));
      table.append(row);
    });
    const tokens = el("div", { class: "tokens", id: "tokens" });
    ex.tokens.forEach((t, i) => tokens.append(el("span", { class: "tok" + (i < ex.offset ? " unscored" : ""), "data-index": i },
      t.replace(/\n/g, "↵\n"))));
    d.append(el("h3", {}, "Top latents (GradSAE's top, then the baseline's) — click one"), el("div", { class: "latent-box" }, table),
      el("div", { class: "contexts", id: "contexts" }), toggle, el("div", { class: "legend", id: "legend" }), tokens);
    table.querySelector(".latent-row").click();
  }
  const outputs = el("table", {}, el("tr", {}, el("th", {}, "setting"), el("th", { class: "text" }, "output (diff against the unedited answer)"), el("th", {}, "EM"), el("th", {}, "F1")));
  const base = ex.outputs.none ? ex.outputs.none.prediction : ex.answer;
  for (const [k, o] of Object.entries(ex.outputs))
    outputs.append(el("tr", {}, el("td", {}, k), el("td", { class: "text" }, k === "none" ? o.prediction : wordDiff(base, o.prediction)),
      el("td", {}, fmt(100 * o.em)), el("td", {}, fmt(100 * o.f1))));
  d.append(el("h3", {}, "Generated answer under each setting"), outputs);
}

function renderContexts(latent) {
  const box = $("#contexts"); box.replaceChildren();
  const contexts = (DATA.top_contexts || {})[latent];
  if (!contexts) return;
  box.append(`Top-activating training contexts of latent ${latent}: `);
  contexts.forEach(([text, value]) => box.append(el("code", {}, text), ` (${fmt(value)}) `));
}

document.addEventListener("DOMContentLoaded", () => {
  $("header h1").textContent = DATA.title; $("header .sub").textContent = DATA.subtitle;
  document.querySelectorAll("nav button").forEach((b) => b.addEventListener("click", () => showSection(b.dataset.section)));
  renderOverview(); renderIndex();
  $("#search").addEventListener("input", renderIndex); $("#filter").addEventListener("change", renderIndex);
  showSection("overview");
});
