// The start page: sign in with a key, upload a file or paste a link, choose the stems, watch
// the job's progress, then open its player. It speaks the job protocol (POST /release/job),
// the content endpoint and /session, nothing else. The key is sent once, to POST /session;
// an HttpOnly cookie stands for it after that, so no script here ever holds the secretKey.
// sessionStorage keeps only what is not secret: the secretId and this tab's upload folder.
"use strict";

const app = document.getElementById("app");
const STATES = { 1: "queued", 2: "processing", 3: "completed", 4: "error", 5: "canceled" };
const METHODS = { 2: 1, 4: 2, 5: 3 };

function session() { return JSON.parse(sessionStorage.getItem("stembot-session") || "null"); }

async function call(action, request) {
  const body = { action, [action[0].toLowerCase() + action.slice(1) + "Request"]: request };
  const response = await fetch("/release/job", { method: "POST", body: JSON.stringify(body),
    headers: { "Content-Type": "application/json" } });
  const answer = await response.json();
  if (answer.error) throw new Error(answer.error.message);
  return answer[action[0].toLowerCase() + action.slice(1) + "Response"];
}

function say(text) { document.getElementById("status").textContent = text; }

async function openPlayer(id) {
  const link = await call("CreatePlayerLink", { id });
  location.assign(link.url);
}

async function signIn(event) {
  event.preventDefault();
  const form = event.target;
  const secretId = form.secretId.value.trim();
  try {
    const response = await fetch("/session", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ secretId, secretKey: form.secretKey.value }) });
    const answer = await response.json();
    if (answer.error) throw new Error(answer.error.message);
    form.reset();  // the secretKey leaves the page with the form
    const repo = await call("CreateRepository", { name: "web" });  // this tab's uploads
    sessionStorage.setItem("stembot-session", JSON.stringify({ secretId, repo: repo.contentId }));
    // A session that ended (expired, key revoked, signed out elsewhere) shows the sign-in again.
if (session() !== null) {
  fetch("/session").then((response) => { if (!response.ok) sessionStorage.removeItem("stembot-session"); })
    .catch(() => {}).finally(show);
} else {
  show();
}
  } catch (error) { say(`Sign-in failed: ${error.message}`); }
}

async function upload(file) {
  const { repo } = session();
  const path = `uploads/${Date.now()}-${file.name.replace(/[^A-Za-z0-9._-]/g, "_")}`;
  const response = await fetch(`/content/${repo}/${path}`, { method: "PUT", body: file });
  const answer = await response.json();
  if (answer.error) throw new Error(answer.error.message);
  return { source: { contentId: repo, path } };
}

async function separate(event) {
  event.preventDefault();
  const form = event.target;
  const file = form.file.files[0];
  const url = form.url.value.trim();
  if (!file === !url) { say("Drop a file or paste a link (one of the two)."); return; }
  try {
    say(file ? `Uploading ${file.name}…` : "Submitting…");
    const input = file ? await upload(file) : { url };
    const method = METHODS[form.stems.value];
    const title = (file ? file.name : url.split("/").pop() || "link").slice(0, 60);
    const created = await call("CreateJob", { customId: title, inputs: [input], outputs: [{
      inputSelectors: [0], smartContentDescriptor: { musicSeperate: { method } } }] });
    await watch(created.job.id);
  } catch (error) { say(`Failed: ${error.message}`); }
}

async function watch(id) {
  const bar = document.getElementById("progress");
  for (;;) {
    const { job } = await call("GetJob", { id });
    bar.value = job.progress || 0;
    say(`Job ${id}: ${STATES[job.state]} ${job.progress ?? 0}%`);
    if (job.state === 3) return openPlayer(id);
    if (job.state > 3) { say(`Job ${id}: ${STATES[job.state]}: ${job.errorMessage || ""}`); return; }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

async function recent() {
  const list = document.getElementById("jobs");
  const { total } = await call("ListJobs", { limit: 1 });
  const { jobs } = await call("ListJobs", { offset: Math.max(0, total - 20), limit: 20 });
  list.replaceChildren(...jobs.reverse().map((job) => el("li", { "data-job": job.id },
    `${new Date(Number(job.timing.createdAt)).toLocaleString()} · ${STATES[job.state]} · `,
    job.state === 3
      ? el("button", { onclick: () => openPlayer(job.id).catch((e) => say(e.message)) }, "Open player")
      : job.errorMessage || "",
    ` ${job.id}`)));
  if (!jobs.length) list.append(el("li", {}, "No jobs yet."));
}

async function signOut() {
  sessionStorage.removeItem("stembot-session");
  await fetch("/session", { method: "DELETE" });
  // A session that ended (expired, key revoked, signed out elsewhere) shows the sign-in again.
if (session() !== null) {
  fetch("/session").then((response) => { if (!response.ok) sessionStorage.removeItem("stembot-session"); })
    .catch(() => {}).finally(show);
} else {
  show();
}
}

function show() {
  const signedIn = session() !== null;
  app.replaceChildren(el("h1", {}, "stembot"));
  if (!signedIn) {
    app.append(el("form", { id: "signin", onsubmit: signIn },
      el("p", { class: "hint" }, "Sign in with a key from `stembot keys create`. It is checked once; this browser then holds a 12-hour session that no page script can read."),
      el("input", { name: "secretId", placeholder: "secretId", required: "", "aria-label": "secretId", autocomplete: "username" }),
      el("input", { name: "secretKey", type: "password", placeholder: "secretKey", required: "", "aria-label": "secretKey", autocomplete: "current-password" }),
      el("button", { type: "submit" }, "Sign in")));
  } else {
    const drop = el("input", { name: "file", type: "file", accept: "audio/*", "aria-label": "audio file" });
    app.append(el("form", { id: "separate", onsubmit: separate },
      el("label", {}, "Drop a file: ", drop),
      el("input", { name: "url", type: "url", placeholder: "…or paste a link", "aria-label": "link" }),
      el("label", {}, "Stems: ", el("select", { name: "stems", "aria-label": "stems" },
        el("option", { value: "2" }, "2: vocals / accompaniment"),
        el("option", { value: "4", selected: "" }, "4: vocals / drums / bass / other"),
        el("option", { value: "5" }, "5: vocals / drums / bass / piano / other"))),
      el("button", { type: "submit" }, "Separate")),
      el("progress", { id: "progress", max: "100", value: "0" }),
      el("h2", {}, "Recent jobs"), el("ul", { id: "jobs", class: "jobs" }),
      el("button", { onclick: () => signOut().catch((error) => say(error.message)) }, "Sign out"));
    recent().catch((error) => say(error.message));
  }
  app.append(el("p", { id: "status", role: "status" }));
}

// A session that ended (expired, key revoked, signed out elsewhere) shows the sign-in again.
if (session() !== null) {
  fetch("/session").then((response) => { if (!response.ok) sessionStorage.removeItem("stembot-session"); })
    .catch(() => {}).finally(show);
} else {
  show();
}
