// BitDance web page: one form -> POST /v1/jobs -> server-sent events (progress, previews) -> gallery.
// recipe.js reads a dropped PNG's recipe into the form; editor.js edits an image with a mask brush.
// Plain JS, no build step, no external resources. Events are read with fetch() (not EventSource)
// so the Authorization header can be sent when the server requires an API key.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { model: null, templates: [], job: null, abort: null, extra: {} };

function apiKey() { return $("api-key").value.trim() || sessionStorage.getItem("bitdance-key") || ""; }

function headers(json) {
  const h = {};
  if (json) h["Content-Type"] = "application/json";
  const key = apiKey();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

// options.body: a JSON string; options.form: a FormData (multipart, its own Content-Type)
async function api(path, options = {}) {
  const { form, ...rest } = options;
  const init = form ? { ...rest, body: form, headers: headers(false) } : { ...rest, headers: headers(rest.body !== undefined) };
  const res = await fetch(path, init);
  const text = await res.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = { error: { message: text } }; }
  if (!res.ok) {
    const err = new Error((body && body.error && body.error.message) || res.statusText);
    err.status = res.status;
    err.param = body && body.error && body.error.param;
    throw err;
  }
  return body;
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "muted";
}

// "param: message", unless the message already names the field ("prompt is empty", not "prompt: prompt ...")
function errorText(e) {
  const msg = e.message || String(e);
  if (!e.param || msg.startsWith(e.param) || msg.startsWith(`'${e.param}'`)) return msg;
  return `${e.param}: ${msg}`;
}

// An error message stays only until the user changes something (then it would describe the past).
function clearStaleError() {
  if ($("status").classList.contains("error")) setStatus("idle");
}

function resetProgress() {
  $("progress").value = 0;
  $("previews").replaceChildren();
}

function showError(e) {
  resetProgress();
  setStatus(errorText(e), true);
  if (e.status === 401) $("key-row").hidden = false;
}

function option(select, value, label) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = label;
  select.appendChild(o);
}

async function loadModel() {
  try {
    const models = await api("/v1/models");
    const m = models.data[0];
    state.model = m;
    $("model-info").textContent = `${m.id} · hash ${m.model_hash} · ${m.cond_type} model`;
    $("size").replaceChildren();
    m.sizes.forEach((s) => option($("size"), s, s));
    $("parallel").replaceChildren();
    m.parallel_nums.forEach((p) => option($("parallel"), String(p), String(p)));
    $("parallel").value = String(m.defaults.parallel_num);
    $("steps").value = m.defaults.num_sampling_steps;
    $("steps").max = m.limits.max_steps;
    $("cfg").value = m.defaults.guidance_scale;
    $("n").max = m.limits.max_n;
    const tpl = await api("/v1/templates");
    state.templates = tpl.data;
    tpl.data.forEach((t) => option($("template"), t.name, `${t.name}: ${t.template}`));
    if (!apiKey()) $("key-row").hidden = true;
    if ($("status").classList.contains("error")) setStatus("idle");  // e.g. "enter the API key", now done
  } catch (e) {
    if (e.status === 401) {
      $("key-row").hidden = false;
      $("model-info").textContent = "this server needs an API key";
      setStatus("enter the API key, then generate", true);
    } else {
      $("model-info").textContent = "model unavailable: " + e.message;
    }
  }
}

function showVars() {
  const t = state.templates.find((x) => x.name === $("template").value);
  const box = $("vars");
  box.replaceChildren();
  box.hidden = !t;
  $("prompt-row").hidden = !!t;
  if (!t) return;
  t.variables.forEach((v) => {
    const label = document.createElement("label");
    label.textContent = v;
    const input = document.createElement("input");
    input.dataset.var = v;
    input.placeholder = (t.defaults && t.defaults[v]) || "";
    label.appendChild(input);
    box.appendChild(label);
  });
}

function numberOrNull(id) {
  const v = $(id).value.trim();
  return v === "" ? null : Number(v);
}

function requestBody() {
  const body = { response_format: "url", n: numberOrNull("n") || 1, previews: true };
  const m = state.model;
  const size = $("size").value;
  if (size) body.size = size;
  const tname = $("template").value;
  if (tname) {
    body.template = tname;
    body.variables = {};
    $("vars").querySelectorAll("input").forEach((i) => { if (i.value.trim()) body.variables[i.dataset.var] = i.value; });
  } else {
    body.prompt = $("prompt").value;
  }
  const neg = $("negative").value.trim();
  if (neg) body.negative_prompt = neg;
  const seed = numberOrNull("seed");
  if (seed !== null) body.seed = seed;
  const steps = numberOrNull("steps");
  if (steps !== null) body.steps = steps;
  const cfg = numberOrNull("cfg");
  if (cfg !== null) body.guidance_scale = cfg;
  if (m && $("parallel").value) body.parallel_num = Number($("parallel").value);
  return { ...state.extra, ...body };
}

// Read "event: x\ndata: {...}\n\n" blocks from a streaming fetch response.
async function readEvents(res, onEvent) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let event = "message";
      const data = [];
      block.split("\n").forEach((line) => {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data.push(line.slice(6));
      });
      if (data.length) onEvent(event, JSON.parse(data.join("\n")));
    }
  }
}

function showProgress(p) {
  $("progress").max = Math.max(1, p.total);
  $("progress").value = p.step;
  const eta = p.eta_s === null || p.eta_s === undefined ? "" : ` · ETA ${p.eta_s.toFixed(1)} s`;
  setStatus(`step ${p.step}/${p.total}${eta}`);
  if (p.preview) {
    $("previews").replaceChildren(...p.preview.map((src) => {
      const img = document.createElement("img");
      img.src = src;
      img.alt = "preview";
      return img;
    }));
  }
}

function addToGallery(item) {
  const card = document.createElement("div");
  card.className = "card";
  const img = document.createElement("img");
  img.src = item.url;
  img.alt = item.revised_prompt || "generated image";
  const prompt = document.createElement("div");
  prompt.className = "prompt";
  prompt.textContent = item.revised_prompt || "";
  const md = item.metadata || {};
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.textContent = `seed ${item.seed} · ${md.width}x${md.height} · ${md.num_sampling_steps} steps · ` +
    `CFG ${md.guidance_scale} · P ${md.parallel_num} · ${md.model_hash}`;
  const link = document.createElement("a");
  link.href = item.url;
  link.download = `bitdance-${item.seed}.png`;
  link.textContent = "download PNG";
  const edit = document.createElement("button");
  edit.type = "button";
  edit.className = "edit";
  edit.textContent = "edit";
  edit.addEventListener("click", async () => {
    const blob = await (await fetch(item.url)).blob();
    openEditor(blob, `seed ${item.seed}`);
    $("editor").scrollIntoView({ block: "nearest" });
  });
  const tools = document.createElement("div");
  tools.className = "tools";
  tools.append(link, edit);
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = "metadata";
  const pre = document.createElement("pre");
  pre.textContent = JSON.stringify(md, null, 2);
  details.append(summary, pre);
  card.append(img, prompt, meta);
  if (md.prompt_ignored_text) {
    const cut = document.createElement("div");
    cut.className = "cut";
    cut.textContent = `not used (past the model's prompt length): "${md.prompt_ignored_text}"`;
    card.append(cut);
  }
  card.append(tools, details);
  $("gallery").prepend(card);
}

function finish(job) {
  state.job = null;
  $("generate").disabled = false;
  $("cancel").disabled = true;
  if (job.status === "succeeded") {
    job.result.data.slice().reverse().forEach(addToGallery);
    $("progress").value = $("progress").max;
    setStatus(`done: ${job.result.data.length} image(s)`);
    $("previews").replaceChildren();
  } else if (job.status === "cancelled") {
    resetProgress();  // the noisy partial previews of a cancelled job are not results
    setStatus("cancelled");
  } else {
    resetProgress();
    setStatus("failed: " + (job.error ? errorText(job.error) : "unknown error"), true);
  }
}

async function generate(ev) {
  ev.preventDefault();
  if ($("api-key").value.trim()) sessionStorage.setItem("bitdance-key", $("api-key").value.trim());
  $("generate").disabled = true;
  resetProgress();
  setStatus("queued…");
  try {
    const job = await api("/v1/jobs", { method: "POST", body: JSON.stringify(requestBody()) });
    state.job = job.id;
    $("cancel").disabled = false;
    state.abort = new AbortController();
    const res = await fetch(`/v1/jobs/${job.id}/events?cancel_on_disconnect=true`,
      { headers: headers(false), signal: state.abort.signal });
    if (!res.ok) throw new Error(`event stream failed (${res.status})`);
    let final = null;
    await readEvents(res, (event, data) => {
      if (event === "progress") showProgress(data);
      else if (event === "status" && data.status === "queued") setStatus(`queued (position ${data.queue_position})`);
      else if (event === "status" && data.status === "running") setStatus("running…");
      else if (event === "done") final = data;
    });
    finish(final || await api(`/v1/jobs/${job.id}`));
  } catch (e) {
    if (e.name === "AbortError") return;
    state.job = null;
    $("generate").disabled = false;
    $("cancel").disabled = true;
    showError(e);
  }
}

async function cancel() {
  if (!state.job) return;
  const id = state.job;
  try {
    const job = await api(`/v1/jobs/${id}`, { method: "DELETE" });
    if (state.abort) state.abort.abort();
    finish(job);
  } catch (e) {
    setStatus("cancel failed: " + e.message, true);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("form").addEventListener("submit", generate);
  $("cancel").addEventListener("click", cancel);
  $("template").addEventListener("change", showVars);
  $("api-key").addEventListener("change", loadModel);
  $("form").addEventListener("input", clearStaleError);
  $("replay").addEventListener("click", () => $("form").requestSubmit());
  $("upload").addEventListener("change", () => { loadFile($("upload").files[0]); $("upload").value = ""; });
  $("template").addEventListener("change", () => { state.extra = {}; });
  document.addEventListener("dragover", (ev) => { ev.preventDefault(); document.body.classList.add("dragging"); });
  document.addEventListener("dragleave", (ev) => {
    if (!ev.relatedTarget) document.body.classList.remove("dragging");
  });
  document.addEventListener("drop", (ev) => {
    ev.preventDefault();
    document.body.classList.remove("dragging");
    const file = ev.dataTransfer && ev.dataTransfer.files[0];
    if (file) loadFile(file).catch((e) => setStatus(`cannot read ${file.name}: ${e.message}`, true));
  });
  setupEditor();
  loadModel();
});
