#include "accel/runtime/web_page.h"

namespace accel::runtime {

// One static page over the v1 API (docs/api.md): no build step, no dependency; the token stays
// in the browser's localStorage and goes out only as the Authorization header.
const char* web_page_html() {
  return R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>accel runtimes</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1d2330; }
  header { background: #1d2330; color: #fff; padding: 10px 20px; display: flex; gap: 16px; align-items: center; }
  header h1 { font-size: 18px; margin: 0; }
  header .grow { flex: 1; }
  main { padding: 16px 20px; display: grid; gap: 16px; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); }
  section { background: #fff; border: 1px solid #dde1e7; border-radius: 6px; padding: 12px 14px; }
  section.wide { grid-column: 1 / -1; }
  h2 { font-size: 15px; margin: 0 0 8px; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid #eef0f3; white-space: nowrap; }
  th { color: #5b6475; font-weight: 600; }
  button, select, input { font: inherit; padding: 3px 8px; }
  button { cursor: pointer; }
  .badge { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 12px; background: #eef0f3; }
  .simulated { background: #fff1c2; color: #7a5a00; }
  .running { background: #d9f5e1; color: #11632f; }
  .queued, .starting, .terminating { background: #e3ecff; color: #1f4bb0; }
  .terminated { background: #eee; color: #666; }
  .error { color: #b3261e; min-height: 1.4em; }
  pre { background: #10141c; color: #e6e9ef; padding: 8px; border-radius: 4px; max-height: 320px; overflow: auto; margin: 6px 0 0; }
  .bar { height: 8px; background: #eef0f3; border-radius: 4px; overflow: hidden; margin: 2px 0 8px; }
  .bar div { height: 100%; background: #3b6fe0; }
  .row { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; margin-bottom: 8px; }
  .muted { color: #5b6475; }
</style>
</head>
<body>
<header>
  <h1>accel runtimes</h1><span class="grow"></span>
  <label>Token <input id="token" type="password" size="36" placeholder="acc_... (accel admin user add)"></label>
  <button id="save-token">Connect</button>
</header>
<main>
  <section class="wide">
    <div class="row">
      <h2 style="margin:0">Your runtimes</h2><span class="grow"></span>
      <label>Runtime type <select id="new-type"></select></label>
      <button id="create">Create runtime</button>
    </div>
    <div id="error" class="error"></div>
    <table><thead><tr><th>Runtime</th><th>Type</th><th>Accelerator</th><th>State</th><th>Reason</th><th>Created</th><th></th></tr></thead>
      <tbody id="runtimes"><tr><td colspan="7" class="muted">Enter your token to see your runtimes.</td></tr></tbody></table>
  </section>
  <section>
    <h2>Run a command in <span id="selected" class="muted">(select a runtime)</span></h2>
    <div class="row"><input id="command" size="48" value="nvidia-smi" placeholder="a shell command">
      <button id="run">Run</button></div>
    <pre id="output" class="muted">Output appears here.</pre>
    <h2 style="margin-top:12px">Events</h2>
    <table><tbody id="events"></tbody></table>
  </section>
  <section>
    <h2>Resources</h2>
    <div id="resources" class="muted">Select a runtime.</div>
    <h2 style="margin-top:12px">Runtime types</h2>
    <table><thead><tr><th>Type</th><th>Model</th><th>Memory</th><th>Free</th><th></th></tr></thead><tbody id="types"></tbody></table>
  </section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let token = localStorage.getItem("accel-token") || "";
// http://HOST:PORT/#token=acc_... signs in (the fragment never reaches the server) and is
// cleared from the address bar at once.
if (location.hash.startsWith("#token=")) {
  token = decodeURIComponent(location.hash.slice(7));
  localStorage.setItem("accel-token", token);
  history.replaceState(null, "", location.pathname);
}
let selected = null;
$("token").value = token;

async function api(method, path, body) {
  const response = await fetch(path, {
    method, headers: Object.assign({"Authorization": "Bearer " + token},
                                   body ? {"Content-Type": "application/json"} : {}),
    body: body ? JSON.stringify(body) : undefined});
  const text = await response.text();
  const isJson = (response.headers.get("Content-Type") || "").startsWith("application/json");
  const data = isJson ? JSON.parse(text) : text;  // job output is plain text
  if (!response.ok) throw new Error((data && data.error) || (response.status + " " + response.statusText));
  return {data, response};
}

function cell(row, content, cls) {
  const td = row.insertCell();
  if (content instanceof Node) td.appendChild(content); else td.textContent = content;
  if (cls) td.className = cls;
  return td;
}
function badge(text, cls) {
  const span = document.createElement("span");
  span.className = "badge " + (cls || "");
  span.textContent = text;
  return span;
}
function button(text, action) {
  const b = document.createElement("button");
  b.textContent = text;
  b.onclick = async (event) => {
    event.stopPropagation();
    try { await action(); $("error").textContent = ""; } catch (e) { $("error").textContent = e.message; }
    refresh();
  };
  return b;
}
const gib = (bytes) => (bytes / 1073741824).toFixed(1) + " GiB";

async function refreshTypes() {
  const {data} = await api("GET", "/v1/runtime-types");
  const types = $("types"), choice = $("new-type");
  const previous = choice.value;
  types.innerHTML = ""; choice.innerHTML = "";
  for (const t of data.types) {
    const row = types.insertRow();
    cell(row, t.type);
    cell(row, t.name || "CPU");
    cell(row, t.memory_gb ? t.memory_gb + " GB" : "");
    cell(row, t.total === null ? "" : t.free + " / " + t.total);
    const notes = document.createElement("span");
    if (t.simulated) notes.appendChild(badge("simulated", "simulated"));
    if (!t.allowed) notes.appendChild(badge("not in tier " + data.tier));
    cell(row, notes);
    if (t.allowed) choice.add(new Option(t.type + (t.simulated ? " (simulated)" : ""), t.type));
  }
  if (previous) choice.value = previous;
}

async function refreshRuntimes() {
  const {data} = await api("GET", "/v1/runtimes");
  const body = $("runtimes");
  body.innerHTML = "";
  if (!data.length) { body.innerHTML = '<tr><td colspan="7" class="muted">No runtimes yet.</td></tr>'; }
  for (const rt of data) {
    const row = body.insertRow();
    row.style.cursor = "pointer";
    row.onclick = () => { selected = rt.id; refresh(); };
    if (rt.id === selected) row.style.background = "#eef4ff";
    cell(row, rt.id);
    cell(row, rt.requested_type + (rt.type && rt.type !== rt.requested_type ? " \u2192 " + rt.type : ""));
    const accel = document.createElement("span");
    accel.textContent = (rt.accelerator_name || (rt.accelerator ? rt.accelerator : "cpu")) + " ";
    if (rt.simulated) accel.appendChild(badge("simulated", "simulated"));
    cell(row, accel);
    cell(row, badge(rt.state, rt.state));
    cell(row, rt.reason || "");
    cell(row, new Date(rt.created_at * 1000).toLocaleTimeString());
    const actions = document.createElement("span");
    if (rt.state !== "terminated") {
      actions.appendChild(button("Restart", () => api("POST", "/v1/runtimes/" + rt.id + "/restart")));
      actions.appendChild(button("Change type", () =>
          api("POST", "/v1/runtimes/" + rt.id + "/change-type", {type: $("new-type").value})));
      actions.appendChild(button("Delete", () => api("DELETE", "/v1/runtimes/" + rt.id)));
    }
    cell(row, actions);
    // An open page is a connected client: it keeps runtimes of tiers without background
    // execution from idling out, as Colab's open notebook does.
    if (rt.state === "running") api("POST", "/v1/runtimes/" + rt.id + "/heartbeat").catch(() => {});
  }
  if (selected && !data.some((rt) => rt.id === selected)) selected = null;
}

async function refreshSelected() {
  $("selected").textContent = selected || "(select a runtime)";
  if (!selected) { $("resources").textContent = "Select a runtime."; $("events").innerHTML = ""; return; }
  const [{data: events}, resources] = await Promise.all([
      api("GET", "/v1/runtimes/" + selected + "/events"),
      api("GET", "/v1/runtimes/" + selected + "/resources").then((r) => r.data).catch(() => null)]);
  const table = $("events");
  table.innerHTML = "";
  for (const e of events.slice(-8)) {
    const row = table.insertRow();
    cell(row, new Date(e.time * 1000).toLocaleTimeString(), "muted");
    cell(row, e.kind);
    cell(row, e.message);
  }
  const box = $("resources");
  box.innerHTML = "";
  if (!resources) { box.textContent = "Not running."; return; }
  const meter = (label, used, total, extra) => {
    const title = document.createElement("div");
    title.textContent = label + ": " + gib(used) + " / " + gib(total) + (extra || "");
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("div");
    fill.style.width = Math.min(100, total ? 100 * used / total : 0).toFixed(1) + "%";
    bar.appendChild(fill);
    box.appendChild(title); box.appendChild(bar);
  };
  meter("System RAM (this runtime)", resources.ram.used, resources.ram.total);
  if (resources.gpu) meter("GPU RAM (" + resources.gpu.name + ")", resources.gpu.memory_used,
                           resources.gpu.memory_total, resources.gpu.simulated ? " (simulated)" : "");
  meter("Disk", resources.disk.used, resources.disk.total);
}

async function refresh() {
  if (!token) return;
  try {
    await Promise.all([refreshTypes(), refreshRuntimes()]);
    await refreshSelected();
  } catch (e) { $("error").textContent = e.message; }
}

$("save-token").onclick = () => {
  token = $("token").value.trim();
  localStorage.setItem("accel-token", token);
  $("error").textContent = "";
  refresh();
};
$("create").onclick = async () => {
  try {
    const {data} = await api("POST", "/v1/runtimes", {type: $("new-type").value, wait: true});
    selected = data.id;
    $("error").textContent = "";
  } catch (e) { $("error").textContent = e.message; }
  refresh();
};
$("run").onclick = async () => {
  if (!selected) { $("error").textContent = "Select a runtime first."; return; }
  const out = $("output");
  out.className = ""; out.textContent = "";
  try {
    const {data: job} = await api("POST", "/v1/runtimes/" + selected + "/jobs", {command: ["sh", "-c", $("command").value]});
    let offset = 0, done = false;
    while (!done) {
      const {data, response} = await api("GET", "/v1/runtimes/" + selected + "/jobs/" + job.id + "/output?offset=" + offset);
      out.textContent += data;
      offset = Number(response.headers.get("X-Accel-Next-Offset"));
      done = response.headers.get("X-Accel-Job-Done") === "true";
      if (!done) await new Promise((r) => setTimeout(r, 300));
    }
    const {data: final} = await api("GET", "/v1/runtimes/" + selected + "/jobs/" + job.id);
    out.textContent += "\n[" + final.state + (final.exit_code !== null ? ", exit status " + final.exit_code : "") + "]";
  } catch (e) { out.textContent += "\n" + e.message; }
  refresh();
};
refresh();
setInterval(refresh, 3000);
</script>
</body>
</html>
)html";
}

}  // namespace accel::runtime
