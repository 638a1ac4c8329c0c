// The text2mesh page: submit jobs (form or one sentence), follow the queue, look at results.
"use strict";

const $ = (id) => document.getElementById(id);
const fileUrl = (job, name) => `/api/jobs/${encodeURIComponent(job.id)}/files/${name.split("/").map(encodeURIComponent).join("/")}`;
const cards = new Map();

function say(element, text, isError) {
  element.textContent = text;
  element.classList.toggle("error", Boolean(isError));
}

async function answerOf(response) {
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = Array.isArray(body.detail) ? body.detail.map((d) => d.msg).join("; ") : body.detail;
    throw new Error(detail || `HTTP ${response.status}`);
  }
  return body;
}

async function loadMeshes() {
  const { meshes } = await answerOf(await fetch("/api/meshes"));
  const select = $("mesh-name");
  for (const name of meshes) {
    select.add(new Option(name, name, name === "vase", name === "vase"));
  }
}

function seconds(value) {
  if (value === undefined || value === null || Number.isNaN(value)) return "";
  return value >= 90 ? `${Math.round(value / 60)} min` : `${Math.round(value)} s`;
}

function makeCard(job) {
  const card = document.createElement("div");
  card.className = "job";
  card.id = `job-${job.id}`;
  card.innerHTML = `
    <h3></h3>
    <div class="meta"></div>
    <div><span class="status"></span> <span class="detail"></span></div>
    <progress max="1" value="0"></progress>
    <div class="error answer error"></div>
    <div class="picture"></div>
    <div class="result"></div>
    <div class="links"></div>
    <button type="button" class="secondary cancel">Cancel</button>`;
  card.querySelector("h3").textContent = job.prompt;
  card.querySelector(".meta").textContent = `${job.mesh || "picture"} · ${job.id}`;
  card.querySelector(".cancel").addEventListener("click", async () => {
    try {
      await answerOf(await fetch(`/api/jobs/${encodeURIComponent(job.id)}/cancel`, { method: "POST" }));
    } catch (error) {
      say(card.querySelector(".error"), error.message, true);
    }
  });
  $("jobs").prepend(card);
  return card;
}

function showResult(card, job) {
  const result = card.querySelector(".result");
  if (result.dataset.shown) return;
  result.dataset.shown = "1";
  const glb = job.files.find((f) => f.endsWith(".glb") && !f.includes("/"));
  if (glb) {
    const viewer = document.createElement("model-viewer");
    viewer.setAttribute("src", fileUrl(job, glb));
    viewer.setAttribute("camera-controls", "");
    viewer.setAttribute("auto-rotate", "");
    viewer.setAttribute("shadow-intensity", "0.6");
    viewer.setAttribute("alt", job.prompt);
    result.append(viewer);
  }
  for (const name of ["renders/turntable.gif", "final.png", "renders/loss.png"]) {
    if (job.files.includes(name)) {
      const img = document.createElement("img");
      img.src = fileUrl(job, name);
      img.alt = name;
      result.append(img);
    }
  }
  const links = card.querySelector(".links");
  const downloads = job.files.filter((f) => !f.includes("/") && /\.(glb|ply|obj|mtl|png)$/.test(f));
  for (const name of downloads) {
    const a = document.createElement("a");
    a.href = fileUrl(job, name);
    a.textContent = name;
    a.download = name;
    links.append(a);
  }
  if (job.kind === "stylize") {
    const textured = document.createElement("a");
    textured.href = `/api/jobs/${encodeURIComponent(job.id)}/textured.glb`;
    textured.textContent = "GLB with texture";
    textured.title = "a 1024² texture baked from the style field (the first download takes a little while)";
    links.append(textured);
  }
  const zip = document.createElement("a");
  zip.href = `/api/jobs/${encodeURIComponent(job.id)}/archive`;
  zip.textContent = "run folder (zip)";
  links.append(zip);
  card.querySelector(".picture").replaceChildren();
}

function update(job) {
  const card = cards.get(job.id) || makeCard(job);
  cards.set(job.id, card);
  card.dataset.status = job.status;
  const status = card.querySelector(".status");
  status.textContent = job.status;
  status.className = `status ${job.status}`;
  const p = job.progress || {};
  const bar = card.querySelector("progress");
  if (p.total) {
    bar.max = p.total;
    bar.value = p.step;
  }
  bar.hidden = job.status !== "running";
  const detail = p.total && job.status === "running"
    ? `iteration ${p.step} of ${p.total} · loss ${Number(p.loss).toFixed(4)} · ${seconds(p.eta)} left`
    : "";
  card.querySelector(".detail").textContent = detail;
  say(card.querySelector(".error"), job.status === "done" ? "" : job.error, true);
  card.querySelector(".cancel").hidden = !["queued", "running"].includes(job.status);
  if (job.status === "running" && job.latest_picture) {
    const holder = card.querySelector(".picture");
    const src = fileUrl(job, job.latest_picture);
    let img = holder.querySelector("img");
    if (!img) {
      img = document.createElement("img");
      img.alt = "latest progress";
      holder.append(img);
    }
    if (!img.src.endsWith(src)) img.src = src;
  }
  if (job.status === "done") showResult(card, job);
}

async function poll() {
  try {
    const { jobs } = await answerOf(await fetch("/api/jobs"));
    jobs.forEach(update);
  } catch (error) {
    console.warn("poll failed", error);
  }
  setTimeout(poll, 1500);
}

$("job-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData();
  form.append("prompt", $("prompt").value);
  const upload = $("mesh-file").files[0];
  if (upload) form.append("mesh", upload);
  else form.append("mesh_name", $("mesh-name").value);
  if ($("preset").value) form.append("preset", $("preset").value);
  if ($("iters").value) form.append("iters", $("iters").value);
  try {
    const { id } = await answerOf(await fetch("/api/jobs", { method: "POST", body: form }));
    say($("job-answer"), `queued ${id}`);
  } catch (error) {
    say($("job-answer"), error.message, true);
  }
});

$("command-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const body = JSON.stringify({ text: $("command").value });
    const answer = await answerOf(await fetch("/api/command", {
      method: "POST", headers: { "Content-Type": "application/json" }, body,
    }));
    say($("command-answer"), `queued ${answer.id}: "${answer.prompt}" ${answer.mesh ? `on the ${answer.mesh}` : "(a picture)"}`);
  } catch (error) {
    say($("command-answer"), error.message, true);
  }
});

const Recognition = window.SpeechRecognition || window.webkitSpeechRecognition;
if (Recognition) {
  const mic = $("mic");
  mic.hidden = false;
  mic.addEventListener("click", () => {
    const recognition = new Recognition();
    recognition.lang = navigator.language || "en-US";
    recognition.onresult = (event) => { $("command").value = event.results[0][0].transcript; };
    recognition.onerror = (event) => say($("command-answer"), `speech: ${event.error}`, true);
    recognition.start();
  });
}

loadMeshes().catch((error) => say($("job-answer"), error.message, true));
poll();
