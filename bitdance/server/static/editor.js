// The editing panel: an image (generated, opened or dropped) + a mask brush -> POST /v1/images/edits.
// The mask is kept at the image's own resolution; the PNG sent has fully transparent pixels where the
// user painted (the OpenAI convention: transparent = regenerate) and opaque pixels elsewhere.
"use strict";

const editor = { blob: null, width: 0, height: 0, painting: false };

async function openEditor(blob, name) {
  const bitmap = await createImageBitmap(blob);
  editor.blob = blob;
  editor.width = bitmap.width;
  editor.height = bitmap.height;
  for (const id of ["edit-image", "edit-mask"]) {
    $(id).width = bitmap.width;
    $(id).height = bitmap.height;
  }
  $("edit-image").getContext("2d").drawImage(bitmap, 0, 0);
  $("edit-stage").style.aspectRatio = `${bitmap.width} / ${bitmap.height}`;  // no stretching of 32x16
  clearMask();
  $("edit-source").textContent = `${name} · ${bitmap.width}x${bitmap.height}`;
  const sizes = (state.model && state.model.sizes) || [];
  const bigger = sizes.filter((s) => {
    const [w, h] = s.split("x").map(Number);
    return w >= bitmap.width && h >= bitmap.height && (w > bitmap.width || h > bitmap.height);
  });
  $("edit-size").replaceChildren();
  bigger.forEach((s) => option($("edit-size"), s, s));
  $("edit-mode").querySelector("option[value=outpaint]").disabled = bigger.length === 0;
  if (!bigger.length) $("edit-mode").value = "inpaint";
  modeChanged();
  $("editor").hidden = false;
}

function modeChanged() {
  const out = $("edit-mode").value === "outpaint";
  $("canvas-row").hidden = !out;
}

function clearMask() {
  $("edit-mask").getContext("2d").clearRect(0, 0, editor.width, editor.height);
}

// Paint whole pixels (no anti-aliasing), so what the user sees is exactly the mask that is sent.
function paintAt(ev) {
  const c = $("edit-mask");
  const r = c.getBoundingClientRect();
  const x = ((ev.clientX - r.left) / r.width) * editor.width;
  const y = ((ev.clientY - r.top) / r.height) * editor.height;
  const radius = Number($("brush").value) / 2;
  const ctx = c.getContext("2d");
  ctx.fillStyle = "rgba(230, 30, 90, 0.6)";
  const d = ctx.getImageData(0, 0, editor.width, editor.height).data;
  for (let py = Math.floor(y - radius); py <= Math.ceil(y + radius); py++) {
    for (let px = Math.floor(x - radius); px <= Math.ceil(x + radius); px++) {
      const inside = px >= 0 && py >= 0 && px < editor.width && py < editor.height;
      const near = (px + 0.5 - x) ** 2 + (py + 0.5 - y) ** 2 <= Math.max(radius, 0.5) ** 2;
      if (inside && near && d[(py * editor.width + px) * 4 + 3] === 0) ctx.fillRect(px, py, 1, 1);
    }
  }
  clearStaleError();
}

function painted() {
  const d = $("edit-mask").getContext("2d").getImageData(0, 0, editor.width, editor.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
  return n;
}

// The OpenAI-style mask PNG: alpha 0 where painted, 255 elsewhere.
function maskBlob() {
  const src = $("edit-mask").getContext("2d").getImageData(0, 0, editor.width, editor.height);
  const c = document.createElement("canvas");
  c.width = editor.width;
  c.height = editor.height;
  const ctx = c.getContext("2d");
  const out = ctx.createImageData(editor.width, editor.height);
  for (let i = 0; i < src.data.length; i += 4) out.data[i + 3] = src.data[i + 3] > 0 ? 0 : 255;
  ctx.putImageData(out, 0, 0);
  return new Promise((resolve) => c.toBlob(resolve, "image/png"));
}

async function runEdit() {
  if (!editor.blob) return;
  const outpaint = $("edit-mode").value === "outpaint";
  const n = painted();
  if (!outpaint && n === 0) {
    setStatus("paint the area to regenerate first (or choose Outpaint)", true);
    return;
  }
  const body = requestBody();
  if (body.template) {
    setStatus("edits take a prompt: choose (none) as template and write one", true);
    return;
  }
  const form = new FormData();
  form.append("image", editor.blob, "image.png");
  if (n > 0) form.append("mask", await maskBlob(), "mask.png");
  const fields = { ...body, response_format: "b64_json" };
  delete fields.previews;
  fields.size = outpaint ? $("edit-size").value : `${editor.width}x${editor.height}`;
  for (const [k, v] of Object.entries(fields)) if (v !== null && v !== undefined) form.append(k, String(v));
  $("edit-go").disabled = true;
  $("generate").disabled = true;
  resetProgress();
  setStatus(outpaint ? "outpainting…" : "inpainting…");
  try {
    const res = await api("/v1/images/edits", { method: "POST", form });
    res.data.slice().reverse().forEach((item) =>
      addToGallery({ ...item, url: "data:image/png;base64," + item.b64_json }));
    $("progress").value = $("progress").max;
    setStatus(`done: ${res.data.length} edited image(s)`);
  } catch (e) {
    showError(e);
  } finally {
    $("edit-go").disabled = false;
    $("generate").disabled = !!state.job;
  }
}

function setupEditor() {
  const c = $("edit-mask");
  c.addEventListener("pointerdown", (ev) => { editor.painting = true; c.setPointerCapture(ev.pointerId); paintAt(ev); });
  c.addEventListener("pointermove", (ev) => { if (editor.painting) paintAt(ev); });
  c.addEventListener("pointerup", () => { editor.painting = false; });
  c.addEventListener("pointercancel", () => { editor.painting = false; });
  $("edit-mode").addEventListener("change", modeChanged);
  $("clear-mask").addEventListener("click", clearMask);
  $("edit-go").addEventListener("click", runEdit);
  $("edit-close").addEventListener("click", () => { $("editor").hidden = true; editor.blob = null; });
}
