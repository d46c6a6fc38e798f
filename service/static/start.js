// The start page: sign in (with a key, or once with the one-click link `stembot up` prints),
// drop a file or paste a link, choose the stems, follow the job's stages, open its player;
// below, the key's recent jobs. It speaks the job protocol (POST /release/job), the content
// endpoint and /session, nothing else. A key is sent once, to POST /session; an HttpOnly
// cookie stands for it after that, so no script here ever holds a secretKey.
// Storage keeps only what is not secret: which key this browser signed in with (localStorage,
// so that only then the page asks for the session) and this tab's upload repository.
"use strict";

const app = document.getElementById("app");
const METHODS = { 2: 1, 4: 2, 5: 3 };  // stems -> musicSeperate.method
const STEMS = { 1: 2, 2: 4, 3: 5 };
const STAGES = [["send", "Send"], ["queue", "Queue"], ["separate", "Separate"], ["save", "Save"]];
let me = null;  // the signed-in secretId
let refresh = null;  // the recent jobs' next refresh, while one of them is still open

function say(text) { document.getElementById("status").textContent = text; }

async function call(action, request) {
  const name = action[0].toLowerCase() + action.slice(1);
  const response = await fetch("/release/job", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ action, [name + "Request"]: request }) });
  const answer = await response.json();
  if (answer.error) throw new Error(answer.error.message);
  return answer[name + "Response"];
}

// --- signing in and out ------------------------------------------------------------------

async function startSession(body) {
  const response = await fetch("/session", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body) });
  const answer = await response.json();
  if (answer.error) throw new Error(answer.error.message);
  me = answer.session.secretId;
  localStorage.setItem("stembot-signed-in", me);
}

async function signIn(event) {
  event.preventDefault();
  const form = event.target;
  const button = form.querySelector("button");
  button.setAttribute("aria-busy", "true");
  try {
    await startSession({ secretId: form.secretId.value.trim(), secretKey: form.secretKey.value });
    form.reset();  // the secretKey leaves the page with the form
    show();
  } catch (error) {
    say(`Sign-in failed: ${error.message}`);
  } finally {
    button.removeAttribute("aria-busy");
  }
}

async function signOut() {
  await fetch("/session", { method: "DELETE" });
  me = null;
  localStorage.removeItem("stembot-signed-in");
  show();
}

// --- a new job -----------------------------------------------------------------------------

async function uploadRepository() {
  const saved = JSON.parse(sessionStorage.getItem("stembot-uploads") || "null");
  if (saved && saved.secretId === me) return saved.repo;
  const { contentId } = await call("CreateRepository", { name: "web" });
  sessionStorage.setItem("stembot-uploads", JSON.stringify({ secretId: me, repo: contentId }));
  return contentId;
}

function put(url, file, onProgress) {  // XMLHttpRequest: fetch reports no upload progress
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("PUT", url);
    request.upload.onprogress = (event) => { if (event.lengthComputable) onProgress(event.loaded / event.total); };
    request.onload = () => {
      let answer = {};
      try { answer = JSON.parse(request.responseText || "{}"); } catch { /* not JSON */ }
      if (request.status >= 400) reject(new Error(answer.error ? answer.error.message : `HTTP ${request.status}`));
      else resolve(answer);
    };
    request.onerror = () => reject(new Error("the upload was interrupted"));
    request.send(file);
  });
}

function megabytes(bytes) { return `${(bytes / 1e6).toFixed(1)} MB`; }

async function upload(file) {
  const repo = await uploadRepository();
  const path = `uploads/${Date.now()}-${file.name.replace(/[^A-Za-z0-9._-]/g, "_")}`;
  await put(`/content/${repo}/${path}`, file, (share) =>
    stage("send", `Uploading ${file.name}… ${Math.round(share * 100)} % of ${megabytes(file.size)}`, share * 100));
  return { source: { contentId: repo, path } };
}

async function separate(event) {
  event.preventDefault();
  const form = event.target;
  const file = form.file.files[0];
  const url = form.url.value.trim();
  if (!file === !url) { say(file ? "Drop a file or paste a link, not both." : "Drop a file or paste a link first."); return; }
  say("");
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  const title = (file ? file.name : decodeURIComponent(url.split("?")[0].split("/").pop()) || "link").slice(0, 60);
  document.getElementById("job").hidden = false;
  document.getElementById("job-title").textContent = title;
  try {
    stage("send", file ? `Uploading ${file.name}…` : "Sending the link…");
    const input = file ? await upload(file) : { url };
    const created = await call("CreateJob", { customId: title, inputs: [input], outputs: [{
      inputSelectors: [0], smartContentDescriptor: { musicSeperate: { method: METHODS[form.stems.value] } } }] });
    recent().catch(() => {});  // the new job heads the list, and follows its progress there
    await watch(created.job.id, Boolean(url));
  } catch (error) {
    stage("failed", `Failed: ${error.message}`);
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

// The stages as a row of steps and one sentence in words; `percent` fills the bar.
function stage(name, words, percent) {
  const at = STAGES.findIndex(([key]) => key === name);
  for (const [index, [key]] of STAGES.entries()) {
    const step = document.querySelector(`#stages [data-stage=${key}]`);
    const state = name === "done" || (at >= 0 && index < at) ? "done" : index === at ? "current" : "todo";
    step.dataset.state = state;
    if (state === "current") step.setAttribute("aria-current", "step"); else step.removeAttribute("aria-current");
  }
  document.getElementById("job").dataset.stage = name;
  document.getElementById("stage-text").textContent = words;
  const bar = document.getElementById("progress");
  if (percent === undefined) bar.removeAttribute("value"); else bar.value = percent;  // no value: "working"
  document.title = name === "failed" ? "Failed · stembot" : `${words.replace(/….*/, "…")} · stembot`;
}

async function watch(id, fromLink) {
  for (;;) {
    const { job } = await call("GetJob", { id });
    const progress = job.progress || 0;
    if (job.state === 1) stage("queue", `Queued: ${queueWords(job) || "waiting for a free worker"}…`);
    else if (job.state === 2 && progress >= 99) stage("save", "Saving the stems…", 99);
    else if (job.state === 2) {
      if (progress > 0) stage("separate", `Separating the stems… ${progress} %`, progress);
      else stage("separate", fromLink ? "Fetching the song, then separating…" : "Separating the stems…");
    } else if (job.state === 3) {
      stage("done", "Done: opening the player…", 100);
      const link = await call("CreatePlayerLink", { id });
      location.assign(link.url);
      return;
    } else {
      stage("failed", job.state === 5 ? "Canceled." : `Failed: ${job.errorMessage || "unknown error"}`);
      recent().catch((error) => say(error.message));
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

// --- recent jobs ---------------------------------------------------------------------------

// The song facts, short: "118 BPM · A♭ major" (the Discord summary adds the loudness).
function factsLine(job) {
  const output = job.outputs && job.outputs[0];
  const facts = output && output.smartContentResult && output.smartContentResult.facts;
  if (!facts || !facts[0]) return "";
  const { tempo, key } = facts[0];
  return `${tempo ? `${Math.round(tempo.bpm)} BPM` : "tempo unclear"} · ${key ? key.name : "key unclear"}`;
}

function titleOf(job) {
  const input = job.inputs[0] || {};
  const track = input.track;  // what a page link's page said: "Artist – Title"
  if (track && track.title) return track.uploader ? `${track.uploader} – ${track.title}` : track.title;
  if (job.customId) return job.customId;
  const where = input.source ? input.source.path : (input.url || "").split("?")[0];
  return where.split("/").pop() || `job ${job.id}`;
}

const RELATIVE = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
function ago(ms) {
  const seconds = (Number(ms) - Date.now()) / 1000;
  for (const [unit, size] of [["day", 86400], ["hour", 3600], ["minute", 60]]) {
    if (Math.abs(seconds) >= size) return RELATIVE.format(Math.round(seconds / size), unit);
  }
  return "just now";
}

// Where a waiting job stands (the service's job.queue): "3 songs ahead · about 2 min"; the
// estimate only where the service measured its recent separations.
function queueWords(job) {
  const queue = job.queue;
  if (!queue) return "";
  const words = queue.ahead ? `${queue.ahead} ${queue.ahead === 1 ? "song" : "songs"} ahead` : "next in line";
  if (!queue.etaSeconds) return words;
  const minutes = Math.round(queue.etaSeconds / 60);
  return `${words} · about ${minutes ? `${minutes} min` : `${Math.max(10, Math.round(queue.etaSeconds / 10) * 10)} s`}`;
}

function stateOf(job) {
  switch (job.state) {
    case 1: return job.queue ? `queued · ${queueWords(job)}` : "queued";
    case 2: return job.progress >= 99 ? "saving the stems" : job.progress ? `separating ${job.progress} %` : "separating";
    case 3: return "done";
    case 4: return "failed";
    default: return "canceled";
  }
}

function jobRow(job) {
  const method = job.outputs[0] && job.outputs[0].smartContentDescriptor.musicSeperate.method;
  const facts = factsLine(job);
  const state = ["", "queued", "running", "done", "failed", "canceled"][job.state];
  return el("li", { "data-job": job.id, "data-state": state },
    el("div", { class: "job-text" },
      el("strong", { class: "job-title" }, titleOf(job)),
      facts ? el("span", { class: "facts" }, facts) : "",
      el("small", { class: "job-meta" },
        el("span", { class: `badge ${state}` }, stateOf(job)),
        ` · ${STEMS[method] || "?"} stems · ${ago(job.timing.createdAt)}`),
      job.state === 4 && job.errorMessage ? el("small", { class: "job-error" }, job.errorMessage) : ""),
    job.state === 3
      ? el("button", { class: "outline", onclick: () => openPlayer(job.id) }, "Open player")
      : "");
}

async function openPlayer(id) {
  try {
    location.assign((await call("CreatePlayerLink", { id })).url);
  } catch (error) { say(error.message); }
}

async function recent() {
  clearTimeout(refresh);
  const list = document.getElementById("jobs");
  if (!list) return;
  const { total } = await call("ListJobs", { limit: 1 });
  const { jobs } = await call("ListJobs", { offset: Math.max(0, total - 20), limit: 20 });
  list.replaceChildren(...jobs.reverse().map(jobRow));
  if (!jobs.length) list.append(el("li", { class: "empty" }, "No jobs yet: your separations will be listed here."));
  if (jobs.some((job) => job.state < 3)) refresh = setTimeout(() => recent().catch(() => {}), 2000);
}

// --- the page --------------------------------------------------------------------------------

function header() {
  return el("header", { class: "top" },
    el("hgroup", {}, el("h1", {}, "stembot"), el("p", {}, "Split a song into its stems, then play and mix them.")),
    me ? el("div", { class: "who" },
      el("small", { title: me }, `Signed in · ${me.slice(0, 8)}…`),
      el("button", { class: "secondary outline", onclick: () => signOut().catch((error) => say(error.message)) }, "Sign out"))
      : "");
}

function signInView() {
  return el("article", { class: "signin" },
    el("h2", {}, "Sign in"),
    el("form", { id: "signin", onsubmit: signIn },
      el("div", { class: "fields" },
        el("label", {}, "Key id",
          el("input", { name: "secretId", placeholder: "AKID…", required: "", autocomplete: "username", spellcheck: "false" })),
        el("label", {}, "Secret key",
          el("input", { name: "secretKey", type: "password", placeholder: "secretKey", required: "", autocomplete: "current-password" }))),
      el("button", { type: "submit" }, "Sign in")),
    el("p", { class: "hint" },
      "The first ", el("code", {}, "stembot up"), " prints a one-click sign-in link. Later, make a key on the server with ",
      el("code", {}, "stembot keys create --name you"),
      ". The key is checked once; this browser then holds a 12-hour session that no page script can read."));
}

function dropZone() {
  const input = el("input", { id: "file", name: "file", type: "file", accept: "audio/*,video/*", class: "visually-hidden" });
  const chosen = el("span", { class: "chosen", id: "chosen" }, "MP3, WAV, FLAC, M4A, OGG…");
  const zone = el("label", { class: "drop", for: "file", id: "drop" },
    el("span", { class: "drop-icon", "aria-hidden": "true" }, "♫"),
    el("strong", {}, "Drop a song here"), el("span", {}, "or click to choose a file"), chosen, input);
  const chose = () => {
    const file = input.files[0];
    chosen.textContent = file ? `${file.name} · ${megabytes(file.size)}` : "MP3, WAV, FLAC, M4A, OGG…";
    zone.classList.toggle("has-file", Boolean(file));
  };
  input.addEventListener("change", chose);
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer.files.length) { input.files = event.dataTransfer.files; chose(); }
  });
  return zone;
}

function stemChoice(stems, words, checked) {
  const input = el("input", { type: "radio", name: "stems", value: String(stems) });
  if (checked) input.setAttribute("checked", "");
  return el("label", { class: "stem-choice" }, input, el("strong", {}, `${stems} stems`), el("small", {}, words));
}

function separateView() {
  return el("article", { class: "new-job" },
    el("form", { id: "separate", onsubmit: separate },
      dropZone(),
      el("div", { class: "or" }, el("span", {}, "or paste a link")),
      el("input", { name: "url", type: "url", placeholder: "https://…/song.mp3", "aria-label": "link to a song" }),
      el("fieldset", { class: "stems" }, el("legend", {}, "Stems"),
        stemChoice(2, "vocals · accompaniment"),
        stemChoice(4, "vocals · drums · bass · other", true),
        stemChoice(5, "vocals · drums · bass · piano · other")),
      el("button", { type: "submit" }, "Separate")),
    el("section", { id: "job", hidden: "", "aria-live": "polite" },
      el("h3", { id: "job-title" }),
      el("ol", { id: "stages", class: "stages" },
        ...STAGES.map(([key, label]) => el("li", { "data-stage": key, "data-state": "todo" }, label))),
      el("progress", { id: "progress", max: "100" }),
      el("p", { id: "stage-text" })));
}

function show() {
  clearTimeout(refresh);
  app.replaceChildren(header());
  if (!me) {
    app.append(signInView());
  } else {
    app.append(separateView(),
      el("section", { class: "recent" }, el("h2", {}, "Recent jobs"), el("ul", { id: "jobs", class: "jobs" })));
    recent().catch((error) => say(error.message));
  }
  app.append(el("p", { id: "status", role: "status" }));
}

// A one-click link (#signin=TOKEN) signs in once; the fragment leaves the address bar and the
// history at once, so a reload or a shared screen shows no token. Otherwise, the session this
// browser may already hold (a session that ended shows the sign-in again).
async function boot() {
  const token = new URLSearchParams(location.hash.slice(1)).get("signin");
  let refused = null;
  if (token !== null) {
    history.replaceState(null, "", location.pathname + location.search);
    try { await startSession({ signInToken: token }); } catch (error) { refused = error; }
  }
  if (!me && localStorage.getItem("stembot-signed-in")) {  // a session may still hold
    try {
      const response = await fetch("/session");
      if (response.ok) me = (await response.json()).session.secretId;
      else localStorage.removeItem("stembot-signed-in");  // expired, revoked, signed out
    } catch { /* offline: the sign-in form says the rest */ }
  }
  show();
  if (refused) say(`Sign-in failed: ${refused.message}`);
}

boot();
