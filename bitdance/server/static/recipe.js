// Reading a BitDance PNG's recipe in the browser: PNG text chunks (tEXt / zTXt / iTXt) -> the `bitdance`
// JSON recipe -> the form, so the image can be replayed (same model, same settings -> the same PNG).
"use strict";

const PNG_SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

function latin1(bytes) { return Array.from(bytes, (c) => String.fromCharCode(c)).join(""); }

async function inflate(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

// ArrayBuffer of a PNG -> {keyword: text} of its text chunks; null when it is not a PNG.
async function pngTextChunks(buffer) {
  const b = new Uint8Array(buffer);
  if (b.length < 8 || PNG_SIGNATURE.some((v, i) => b[i] !== v)) return null;
  const view = new DataView(buffer);
  const out = {};
  for (let off = 8; off + 12 <= b.length;) {
    const len = view.getUint32(off);
    const type = latin1(b.subarray(off + 4, off + 8));
    const data = b.subarray(off + 8, Math.min(off + 8 + len, b.length));
    const z = data.indexOf(0);
    if (type === "tEXt" && z > 0) {
      out[latin1(data.subarray(0, z))] = latin1(data.subarray(z + 1));
    } else if (type === "zTXt" && z > 0) {
      out[latin1(data.subarray(0, z))] = latin1(await inflate(data.subarray(z + 2)));
    } else if (type === "iTXt" && z > 0) {
      const compressed = data[z + 1] === 1;
      const langEnd = data.indexOf(0, z + 3);
      const tkeyEnd = data.indexOf(0, langEnd + 1);
      let text = data.subarray(tkeyEnd + 1);
      if (compressed) text = await inflate(text);
      out[latin1(data.subarray(0, z))] = new TextDecoder().decode(text);
    } else if (type === "IEND") {
      break;
    }
    off += 12 + len;
  }
  return out;
}

function note(text) {
  $("recipe-note").textContent = text;
  $("recipe-note").hidden = !text;
}

// Put a recipe's settings into the form; returns what could not be carried over (shown to the user).
function fillFromRecipe(recipe) {
  const lost = [];
  const m = state.model;
  if (recipe.prompt === null || recipe.prompt === undefined) lost.push("it is a class-conditional image");
  $("template").value = "";
  showVars();
  $("prompt").value = recipe.prompt || "";
  $("negative").value = recipe.negative_prompt || "";
  $("seed").value = recipe.seed === null || recipe.seed === undefined ? "" : recipe.seed;
  $("steps").value = recipe.num_sampling_steps;
  $("cfg").value = recipe.guidance_scale;
  const size = `${recipe.width}x${recipe.height}`;
  if ([...$("size").options].some((o) => o.value === size)) $("size").value = size;
  else lost.push(`size ${size} is not offered by this server`);
  if ([...$("parallel").options].some((o) => o.value === String(recipe.parallel_num))) {
    $("parallel").value = String(recipe.parallel_num);
  } else lost.push(`P=${recipe.parallel_num} is not offered`);
  state.extra = recipe.guidance_schedule ? { guidance_schedule: recipe.guidance_schedule } : {};
  if (recipe.known || recipe.edit) lost.push("it is an edit (the page regenerates from the prompt only)");
  if (recipe.postprocess && recipe.postprocess.length) lost.push(`post-processing ${recipe.postprocess.join(" ")}`);
  if (m && recipe.model_hash !== m.model_hash) {
    lost.push(`it was made with ${recipe.model} (hash ${recipe.model_hash}), this server runs hash ${m.model_hash}`);
  }
  return lost;
}

// A file the user dropped or opened: load its recipe (if any) into the form, and open it in the editor.
async function loadFile(file) {
  if (!file) return;
  const buffer = await file.arrayBuffer();
  let chunks = null;
  try { chunks = await pngTextChunks(buffer); } catch (_) { chunks = null; }
  let recipe = null;
  if (chunks && chunks.bitdance) {
    try { recipe = JSON.parse(chunks.bitdance); } catch (_) { recipe = null; }
  }
  if (recipe && recipe.format === "bitdance-recipe") {
    const lost = fillFromRecipe(recipe);
    $("replay").hidden = false;
    note(`Recipe of ${file.name} loaded into the form` +
      (lost.length ? ` (replay will differ: ${lost.join("; ")})` : "; Replay makes the same image again") + ".");
  } else {
    $("replay").hidden = true;
    note(chunks ? `${file.name} has no BitDance recipe; opened for editing only.` : `${file.name}: opened for editing.`);
  }
  openEditor(new Blob([buffer], { type: file.type || "image/png" }), file.name);
}
