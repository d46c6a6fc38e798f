// The stem player: plain Web Audio and canvas, no library and nothing from the internet.
// Every stem is an AudioBufferSourceNode started at the same AudioContext time with the same
// offset, so the stems stay sample-synchronous; each goes through its own GainNode
// (mute, solo, volume) into one analyser, whose level the page reports in its state.
"use strict";

const data = JSON.parse(document.getElementById("page-data").textContent);
const app = document.getElementById("app");
const ctx = new AudioContext();
const analyser = ctx.createAnalyser();
analyser.fftSize = 2048;
analyser.connect(ctx.destination);

const stems = data.stems.map((stem) => ({
  name: stem.name, url: stem.url, colour: stem.colour, volume: 1, muted: false, solo: false,
  buffer: null, source: null, gain: ctx.createGain(), canvas: null, lane: null,
}));
stems.forEach((stem) => stem.gain.connect(analyser));

let playing = false;
let startedAt = 0; // ctx time at which offset 0 would have played
let offset = 0; // seconds, while paused
let duration = 0;
const errors = [];

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function position() {
  const now = playing ? ctx.currentTime - startedAt : offset;
  return Math.min(Math.max(now, 0), duration);
}

function effectiveGain(stem) {
  const anySolo = stems.some((s) => s.solo);
  return stem.muted || (anySolo && !stem.solo) ? 0 : stem.volume;
}

function applyGains() {
  for (const stem of stems) {
    stem.gain.gain.setValueAtTime(effectiveGain(stem), ctx.currentTime);
    stem.lane.classList.toggle("silent", effectiveGain(stem) === 0);
    stem.lane.querySelector(".mute").setAttribute("aria-pressed", String(stem.muted));
    stem.lane.querySelector(".solo").setAttribute("aria-pressed", String(stem.solo));
  }
  updateMixLink();
}

function play() {
  if (playing || !duration) return;
  ctx.resume();
  if (offset >= duration) offset = 0;
  const when = ctx.currentTime + 0.05; // one start time for all: sample-synchronous
  for (const stem of stems) {
    const source = ctx.createBufferSource();
    source.buffer = stem.buffer;
    source.connect(stem.gain);
    source.start(when, offset);
    stem.source = source;
  }
  startedAt = when - offset;
  playing = true;
  stems[0].source.onended = () => { if (playing && position() >= duration - 0.01) stop(duration); };
  render();
}

function stop(at) {
  for (const stem of stems) {
    if (stem.source) { stem.source.onended = null; stem.source.stop(); stem.source = null; }
  }
  playing = false;
  offset = at;
  render();
}

function pause() { if (playing) stop(position()); }
function toggle() { playing ? pause() : play(); }

function seek(seconds) {
  const target = Math.min(Math.max(seconds, 0), duration);
  if (playing) { stop(target); play(); } else { offset = target; render(); }
}

function level() {
  const samples = new Float32Array(analyser.fftSize);
  analyser.getFloatTimeDomainData(samples);
  let sum = 0;
  for (const x of samples) sum += x * x;
  return Math.sqrt(sum / samples.length);
}

function drawWave(stem) {
  const canvas = stem.canvas;
  const width = canvas.width = canvas.clientWidth * devicePixelRatio;
  const height = canvas.height = canvas.clientHeight * devicePixelRatio;
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, width, height);
  g.fillStyle = getComputedStyle(canvas).color;
  const channel = stem.buffer.getChannelData(0);
  const step = Math.max(1, Math.floor(channel.length / width));
  const peaks = new Float32Array(width);
  for (let x = 0; x < width; x++) {
    for (let i = x * step; i < (x + 1) * step && i < channel.length; i++) {
      peaks[x] = Math.max(peaks[x], Math.abs(channel[i]));
    }
  }
  // each lane scaled to its own loudest moment: a quiet stem still shows what it holds
  const loudest = Math.max(1e-4, ...peaks);
  for (let x = 0; x < width; x++) {
    const bar = Math.max(1, (peaks[x] / loudest) * height * 0.95);
    g.fillRect(x, (height - bar) / 2, 1, bar);
  }
}

function updateMixLink() {
  const gains = {};
  for (const stem of stems) gains[stem.name] = effectiveGain(stem);
  const format = document.getElementById("mix-format").value;
  const link = document.getElementById("mix-download");
  link.href = `${data.mix}&format=${encodeURIComponent(format)}` +
    `&gains=${encodeURIComponent(JSON.stringify(gains))}`;
}

function render() {
  const now = position();
  document.getElementById("time").textContent = `${clock(now)} / ${clock(duration)}`;
  const seekbar = document.getElementById("seek");
  if (document.activeElement !== seekbar) seekbar.value = duration ? now / duration : 0;
  const play = document.getElementById("play");
  play.textContent = playing ? "Pause" : "Play";
  play.setAttribute("aria-pressed", String(playing));
  for (const stem of stems) {
    stem.lane.style.setProperty("--at", duration ? `${(now / duration) * 100}%` : "0%");
  }
}

function lane(stem, index) {
  stem.canvas = el("canvas", { class: "wave", "aria-hidden": "true" });
  const toggleMute = () => { stem.muted = !stem.muted; applyGains(); };
  const toggleSolo = () => { stem.solo = !stem.solo; applyGains(); };
  const volume = el("input", { type: "range", min: "0", max: "2", step: "0.01", value: "1",
    class: "volume", "aria-label": `${stem.name} volume`,
    oninput: (event) => { stem.volume = Number(event.target.value); applyGains(); } });
  stem.lane = el("section", { class: "lane", "data-stem": stem.name },
    el("div", { class: "controls" },
      el("span", { class: "name" }, `${index + 1} · ${stem.name}`),
      el("button", { class: "mute", "aria-pressed": "false", onclick: toggleMute,
        title: `mute (key ${index + 1})` }, "M"),
      el("button", { class: "solo", "aria-pressed": "false", onclick: toggleSolo,
        title: "solo" }, "S"),
      volume,
      el("a", { class: "download", href: stem.url, download: `${stem.name}` }, "Download")),
    el("div", { class: "track", onclick: (event) => {
      const box = event.currentTarget.getBoundingClientRect();
      seek(((event.clientX - box.left) / box.width) * duration);
    } }, stem.canvas, el("div", { class: "playhead" })));
  // the stem's colour, as in the Discord picture (service/palette.py); set through CSSOM,
  // which the policy allows where a style attribute would not be
  stem.lane.style.setProperty("--stem", stem.colour);
  return stem.lane;
}

function build() {
  const formats = ["wav", "flac", "mp3", "opus", "wav-float"].map((f) => el("option", { value: f }, f));
  app.append(
    el("header", {}, el("h1", {}, data.title),
      data.facts ? el("p", { id: "facts", class: "facts" }, data.facts) : "",
      el("p", { class: "hint" }, "Space: play/pause · 1–9: mute a stem · ←/→: 5 s")),
    el("div", { class: "transport" },
      el("button", { id: "play", "aria-pressed": "false", onclick: toggle, disabled: "" }, "Play"),
      el("input", { id: "seek", type: "range", min: "0", max: "1", step: "0.001", value: "0",
        "aria-label": "position", oninput: (event) => seek(Number(event.target.value) * duration) }),
      el("span", { id: "time" }, "0:00 / 0:00")),
    el("div", { id: "lanes" }, ...stems.map(lane)),
    el("div", { class: "mix" }, el("label", { for: "mix-format" }, "Mix as set: "),
      el("select", { id: "mix-format", onchange: updateMixLink }, ...formats),
      el("a", { id: "mix-download", href: "#", download: "mix" }, "Download mix")),
    el("p", { id: "status", role: "status" }, "Loading the stems…"));
  updateMixLink();
}

async function load() {
  const buffers = await Promise.all(stems.map(async (stem) => {
    const response = await fetch(stem.url);
    if (!response.ok) throw new Error(`${stem.name}: HTTP ${response.status}`);
    return ctx.decodeAudioData(await response.arrayBuffer());
  }));
  buffers.forEach((buffer, i) => { stems[i].buffer = buffer; drawWave(stems[i]); });
  duration = Math.max(...buffers.map((b) => b.duration));
  document.getElementById("play").removeAttribute("disabled");
  document.getElementById("status").textContent = "Ready";
  document.body.dataset.ready = "true";
  render();
}

document.addEventListener("keydown", (event) => {
  if (event.target.closest && event.target.closest("input, select, textarea")) return;
  if (event.code === "Space") { event.preventDefault(); toggle(); }
  else if (/^[1-9]$/.test(event.key) && stems[Number(event.key) - 1]) {
    const stem = stems[Number(event.key) - 1];
    stem.muted = !stem.muted; applyGains();
  } else if (event.key === "ArrowRight") seek(position() + 5);
  else if (event.key === "ArrowLeft") seek(position() - 5);
});
window.addEventListener("resize", () => stems.forEach((s) => s.buffer && drawWave(s)));

// What tests (and curious users in the console) can read: the player's whole state.
window.stemPlayer = {
  state: () => ({
    ready: document.body.dataset.ready === "true", playing, time: position(), duration,
    contextTime: ctx.currentTime, level: level(), errors,
    stems: stems.map((s) => ({ name: s.name, muted: s.muted, solo: s.solo,
      volume: s.volume, gain: s.gain.gain.value, effective: effectiveGain(s) })),
  }),
  play, pause, seek,
};

build();
(function tick() { render(); requestAnimationFrame(tick); })();
load().catch((error) => {
  errors.push(String(error));
  document.getElementById("status").textContent = `Could not load the stems: ${error.message}`;
});
