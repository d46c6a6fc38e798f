// The stem player: Web Audio and canvas, with one npm package served by this service
// (/vendor/soundtouch: SoundTouch's AudioWorklet, for speed and pitch); nothing from the
// internet.
//
// Every stem is an AudioBufferSourceNode started at the same AudioContext time with the same
// offset, so the stems stay sample-synchronous; each goes through its own GainNode (mute,
// solo, volume) into one bus, the bus through one SoundTouchNode (one stretcher for all stems:
// they cannot drift apart) into an analyser, whose level the page reports in its state.
// Speed: every source's playbackRate and the stretcher's playbackRate take the same value,
// and the stretcher gives back the pitch the rate took. Transpose: the stretcher's
// pitchSemitones. Loop: every source loops the same loopStart..loopEnd, so it is seamless.
"use strict";

const data = JSON.parse(document.getElementById("page-data").textContent);
const app = document.getElementById("app");
const ctx = new AudioContext();
const analyser = ctx.createAnalyser();
analyser.fftSize = 2048;
analyser.connect(ctx.destination);
const bus = ctx.createGain(); // all stems, after their gains
bus.connect(analyser); // until the stretcher is in (or for good, where it cannot load)
let stretcher = null;
const BEATS_PER_BAR = 4; // the facts give a tempo, not a metre: one bar of 4/4

const stems = data.stems.map((stem) => ({
  name: stem.name, url: stem.url, midi: stem.midi, colour: stem.colour, volume: 1,
  muted: false, solo: false,
  buffer: null, source: null, gain: ctx.createGain(), canvas: null, lane: null,
}));
stems.forEach((stem) => stem.gain.connect(bus));
const chords = data.chords || [];

let playing = false;
// while playing, the playhead was at anchorPos (song seconds) at ctx time anchorTime and
// moves `speed` song seconds per second from there (wrapping in the loop)
let anchorTime = 0;
let anchorPos = 0;
let offset = 0; // song seconds, while paused
let duration = 0;
let speed = 1; // 0.5..1.5, in whole percent
let semitones = 0; // -6..6
let loop = null; // {a, b} song seconds, a < b
let wraps = 0; // how often the playhead went from B back to A since play
let countIn = false;
let countInUntil = 0; // ctx time the count-in's bar ends (0: none pending)
let clicks = [];
const errors = [];
const MIN_LOOP = 0.1; // seconds

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

// a loop's ends to the tenth: loops are often a bar or two
function clockTenths(seconds) {
  const tenths = Math.max(0, Math.round(seconds * 10));
  const s = Math.floor(tenths / 10);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}.${tenths % 10}`;
}

function clamp(x, low, high) { return Math.min(Math.max(x, low), high); }

// the playhead now: where it is and how often it wrapped since the anchor
function where() {
  if (!playing) return { pos: offset, wrapped: 0 };
  let pos = anchorPos + Math.max(0, ctx.currentTime - anchorTime) * speed;
  let wrapped = 0;
  if (loop && anchorPos < loop.b && pos >= loop.b) {
    const length = loop.b - loop.a;
    wrapped = Math.floor((pos - loop.a) / length);
    pos = loop.a + ((pos - loop.a) % length);
  }
  return { pos: clamp(pos, 0, duration), wrapped };
}

function position() { return where().pos; }

// a new anchor at the playhead now, before the speed or the loop changes
function reanchor() {
  if (!playing) return;
  const { pos, wrapped } = where();
  wraps += wrapped;
  anchorPos = pos;
  anchorTime = Math.max(ctx.currentTime, anchorTime); // a count-in's start stays
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

function applyLoop(source) {
  source.loop = Boolean(loop);
  if (loop) { source.loopStart = loop.a; source.loopEnd = loop.b; }
}

function play() {
  if (playing || !duration) return;
  ctx.resume();
  if (offset >= duration) offset = 0;
  // a loop holds the playhead: from after B (or, counted in, from anywhere) it starts at A
  if (loop && (offset >= loop.b || countIn)) offset = loop.a;
  let when = ctx.currentTime + 0.05; // one start time for all: sample-synchronous
  if (countIn && data.bpm) when = countBar(when);
  for (const stem of stems) {
    const source = ctx.createBufferSource();
    source.buffer = stem.buffer;
    source.playbackRate.value = speed;
    applyLoop(source);
    source.connect(stem.gain);
    source.start(when, offset);
    stem.source = source;
  }
  anchorTime = when;
  anchorPos = offset;
  wraps = 0;
  playing = true;
  stems[0].source.onended = () => { if (playing && position() >= duration - 0.01) stop(duration); };
  render();
}

// one bar of clicks at the song's tempo (at the speed set), the first one higher; when the
// bar is over
function countBar(at) {
  const beat = 60 / (data.bpm * speed);
  for (let i = 0; i < BEATS_PER_BAR; i++) {
    const tone = ctx.createOscillator();
    const envelope = ctx.createGain();
    const start = at + i * beat;
    tone.frequency.value = i === 0 ? 1500 : 1000;
    envelope.gain.setValueAtTime(0.6, start);
    envelope.gain.exponentialRampToValueAtTime(0.001, start + 0.05);
    tone.connect(envelope);
    // into the bus: through the stretcher with the music, so both come out equally late
    envelope.connect(bus);
    tone.start(start);
    tone.stop(start + 0.06);
    clicks.push(tone);
  }
  countInUntil = at + BEATS_PER_BAR * beat;
  return countInUntil;
}

function stop(at) {
  for (const stem of stems) {
    if (stem.source) { stem.source.onended = null; stem.source.stop(); stem.source = null; }
  }
  clicks.forEach((tone) => tone.stop());
  clicks = [];
  countInUntil = 0;
  playing = false;
  offset = at;
  render();
}

function pause() { if (playing) stop(position()); }
function toggle() { playing ? pause() : play(); }

function seek(seconds) {
  let target = clamp(seconds, 0, duration);
  if (loop && target >= loop.b) target = loop.a;
  if (playing) { stop(target); play(); } else { offset = target; render(); }
}

function setSpeed(percent) {
  speed = clamp(Math.round(Number(percent)), 50, 150) / 100;
  reanchor();
  for (const stem of stems) if (stem.source) stem.source.playbackRate.value = speed;
  if (stretcher) stretcher.playbackRate.value = speed;
  showPractice();
}

function setSemitones(value) {
  semitones = clamp(Math.round(Number(value)), -6, 6);
  if (stretcher) stretcher.pitchSemitones.value = semitones;
  showPractice();
}

// A and B, in either order; null clears the loop
function setLoop(a, b) {
  reanchor();
  if (a === null || b === null || a === undefined || b === undefined) loop = null;
  else {
    const [low, high] = [Math.min(a, b), Math.max(a, b)].map((x) => clamp(x, 0, duration));
    loop = high - low >= MIN_LOOP ? { a: low, b: high } : null;
  }
  for (const stem of stems) if (stem.source) applyLoop(stem.source);
  showLoop();
  // a playhead beyond the new B would never come back into the loop: it starts at A
  if (loop && position() >= loop.b) seek(loop.a);
}

// the keys and buttons: A (or B) at the playhead, the loop once both are there
let pendingA = null;
function markA() {
  const at = position();
  if (loop && at < loop.b) setLoop(at, loop.b);
  else { pendingA = at; setLoop(null, null); }
}
function markB() {
  const at = position();
  const a = loop ? loop.a : pendingA;
  if (a === null) { pendingA = null; setLoop(0, at); return; } // B alone: from the start
  pendingA = null;
  setLoop(a, at);
}
function clearLoop() { pendingA = null; setLoop(null, null); }

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
  // the mix as heard: at the speed and in the key set here (rendered by the server)
  const practice = (speed !== 1 ? `&tempo=${Math.round(speed * 100) / 100}` : "") +
    (semitones ? `&semitones=${semitones}` : "");
  link.href = `${data.mix}&format=${encodeURIComponent(format)}` +
    `&gains=${encodeURIComponent(JSON.stringify(gains))}${practice}`;
}

function showPractice() {
  document.getElementById("speed").value = String(Math.round(speed * 100));
  document.getElementById("speed-shown").textContent = `${Math.round(speed * 100)} %`;
  document.getElementById("pitch").value = String(semitones);
  document.getElementById("pitch-shown").textContent =
    semitones ? `${semitones > 0 ? "+" : "−"}${Math.abs(semitones)} st` : "0 st";
  updateMixLink();
}

function showLoop() {
  const lanes = document.getElementById("lanes");
  lanes.classList.toggle("looping", Boolean(loop));
  if (loop && duration) {
    lanes.style.setProperty("--loop-a", `${(loop.a / duration) * 100}%`);
    lanes.style.setProperty("--loop-b", `${(loop.b / duration) * 100}%`);
  }
  document.getElementById("loop-shown").textContent = loop
    ? `${clockTenths(loop.a)} – ${clockTenths(loop.b)}`
    : pendingA !== null ? `A ${clockTenths(pendingA)} – set B` : "off";
  document.getElementById("loop-clear").toggleAttribute("disabled", !loop && pendingA === null);
}

function currentChord(now) {
  return chords.findIndex((c) => c.start <= now && now < c.end);
}

function render() {
  const now = position();
  document.getElementById("time").textContent = `${clock(now)} / ${clock(duration)}`;
  const seekbar = document.getElementById("seek");
  if (document.activeElement !== seekbar) seekbar.value = duration ? now / duration : 0;
  const play = document.getElementById("play");
  play.textContent = playing ? "Pause" : "Play";
  play.setAttribute("aria-pressed", String(playing));
  const at = duration ? `${(now / duration) * 100}%` : "0%";
  document.getElementById("lanes").style.setProperty("--at", at);
  const counting = playing && ctx.currentTime < countInUntil;
  document.getElementById("count-shown").textContent = counting ? "Counting in…" : "";
  const lane = document.getElementById("chords");
  if (lane) {
    const index = currentChord(now);
    lane.querySelectorAll(".chord").forEach((node, i) => {
      node.classList.toggle("current", i === index);
    });
  }
}

// A click (or tap) on a lane seeks there; a drag across it sets the loop A..B it covers.
function trackPointer(track) {
  let down = null;
  const at = (event) => {
    const box = track.getBoundingClientRect();
    return clamp((event.clientX - box.left) / box.width, 0, 1) * duration;
  };
  track.addEventListener("pointerdown", (event) => {
    down = { x: event.clientX, time: at(event) };
    track.setPointerCapture(event.pointerId);
  });
  track.addEventListener("pointerup", (event) => {
    if (!down || !duration) return;
    if (Math.abs(event.clientX - down.x) > 6) setLoop(down.time, at(event));
    else seek(at(event));
    down = null;
  });
  track.addEventListener("pointercancel", () => { down = null; });
}

function lane(stem, index) {
  stem.canvas = el("canvas", { class: "wave", "aria-hidden": "true" });
  const toggleMute = () => { stem.muted = !stem.muted; applyGains(); };
  const toggleSolo = () => { stem.solo = !stem.solo; applyGains(); };
  const volume = el("input", { type: "range", min: "0", max: "2", step: "0.01", value: "1",
    class: "volume", "aria-label": `${stem.name} volume`,
    oninput: (event) => { stem.volume = Number(event.target.value); applyGains(); } });
  const track = el("div", { class: "track" }, stem.canvas, el("div", { class: "loop-region" }),
    el("div", { class: "playhead" }));
  trackPointer(track);
  stem.lane = el("section", { class: "lane", "data-stem": stem.name },
    el("div", { class: "controls" },
      el("span", { class: "name" }, `${index + 1} · ${stem.name}`),
      el("button", { class: "mute outline", "aria-pressed": "false", onclick: toggleMute,
        title: `mute (key ${index + 1})` }, "M"),
      el("button", { class: "solo outline", "aria-pressed": "false", onclick: toggleSolo,
        title: "solo" }, "S"),
      volume,
      el("a", { class: "download", href: stem.url, download: `${stem.name}` }, "Download"),
      // its notes (CreateMidi, made on the first click); drums have none
      ...(stem.midi ? [el("a", { class: "download midi", href: stem.midi,
        download: `${stem.name}.mid`, title: "the stem's notes as a MIDI file" }, "MIDI")] : [])),
    track);
  // the stem's colour, as in the Discord picture (service/palette.py); set through CSSOM,
  // which the policy allows where a style attribute would not be
  stem.lane.style.setProperty("--stem", stem.colour);
  return stem.lane;
}

// the chords under the waveforms, each as wide as it lasts; a click on one seeks to it
function chordLane() {
  const track = el("div", { class: "track chord-track" }, el("div", { class: "loop-region" }),
    el("div", { class: "playhead" }));
  for (const chord of chords) {
    if (chord.start >= duration) continue;
    const node = el("span", { class: "chord", title: `${chord.chord} at ${clock(chord.start)}` },
      chord.chord);
    node.style.left = `${(chord.start / duration) * 100}%`;
    node.style.width = `${((Math.min(chord.end, duration) - chord.start) / duration) * 100}%`;
    track.append(node);
  }
  trackPointer(track);
  return el("section", { id: "chords", class: "lane chords", "aria-label": "chords" },
    el("div", { class: "controls" }, el("span", { class: "name" }, "Chords")), track);
}

function range(id, min, max, value, label, onchange) {
  return el("input", { id, type: "range", min, max, step: "1", value, "aria-label": label,
    oninput: (event) => onchange(event.target.value) });
}

function build() {
  app.classList.add("container");
  const formats = ["wav", "flac", "mp3", "opus", "wav-float"].map((f) => el("option", { value: f }, f));
  const tempo = data.bpm ? `${Math.round(data.bpm)} BPM` : "";
  app.append(
    el("header", {}, el("h1", {}, data.title),
      data.facts ? el("p", { id: "facts", class: "facts" }, data.facts) : "",
      el("p", { class: "hint" }, "Space: play/pause · 1–9: mute a stem · ←/→: 5 s · " +
        "[ and ]: loop A and B · \\: no loop · drag across a lane: loop it")),
    el("div", { class: "transport" },
      el("button", { id: "play", "aria-pressed": "false", onclick: toggle, disabled: "" }, "Play"),
      el("input", { id: "seek", type: "range", min: "0", max: "1", step: "0.001", value: "0",
        "aria-label": "position", oninput: (event) => seek(Number(event.target.value) * duration) }),
      el("span", { id: "time" }, "0:00 / 0:00")),
    el("div", { class: "practice" },
      el("label", { class: "knob" }, el("span", {}, "Speed ", el("output", { id: "speed-shown" }, "100 %")),
        range("speed", "50", "150", "100", "speed in percent", setSpeed)),
      el("label", { class: "knob" }, el("span", {}, "Transpose ", el("output", { id: "pitch-shown" }, "0 st")),
        range("pitch", "-6", "6", "0", "transpose in semitones", setSemitones)),
      el("button", { id: "practice-reset", class: "secondary outline",
        onclick: () => { setSpeed(100); setSemitones(0); } }, "Reset"),
      el("div", { class: "loop", role: "group", "aria-label": "loop" },
        el("button", { id: "loop-a", class: "secondary", onclick: markA, title: "key [" }, "A"),
        el("button", { id: "loop-b", class: "secondary", onclick: markB, title: "key ]" }, "B"),
        el("button", { id: "loop-clear", class: "secondary outline", onclick: clearLoop,
          title: "key \\", disabled: "" }, "No loop")),
      el("span", { class: "loop-info" }, "Loop ", el("output", { id: "loop-shown" }, "off")),
      el("label", { class: "count-in", title: data.bpm ? "" : "the song's tempo is unclear" },
        el("input", { id: "count-in", type: "checkbox", role: "switch",
          ...(data.bpm ? {} : { disabled: "" }),
          onchange: (event) => { countIn = event.target.checked; } }),
        ` Count-in${tempo ? ` (1 bar at ${tempo})` : ""}`),
      el("span", { id: "count-shown", role: "status" })),
    el("div", { id: "lanes" }, ...stems.map(lane)),
    el("div", { class: "mix" }, el("label", { for: "mix-format" }, "Mix as heard: "),
      el("select", { id: "mix-format", onchange: updateMixLink }, ...formats),
      el("a", { id: "mix-download", href: "#", download: "mix", role: "button" }, "Download mix")),
    el("p", { id: "status", role: "status" }, "Loading the stems…"));
  // speed and pitch need the stretcher: off until it is in
  for (const id of ["speed", "pitch", "practice-reset"]) {
    document.getElementById(id).setAttribute("disabled", "");
  }
  updateMixLink();
  showLoop();
}

// SoundTouch's AudioWorklet (served from web/node_modules by the service): bus → stretcher →
// analyser. Where it cannot load (AudioWorklet needs https or localhost), the player still
// plays, at the song's own speed and pitch.
async function loadStretcher() {
  const { SoundTouchNode } = await import("/vendor/soundtouch/SoundTouchNode.js");
  await SoundTouchNode.register(ctx, "/vendor/soundtouch/soundtouch-processor.js");
  const node = new SoundTouchNode({ context: ctx });
  node.playbackRate.value = speed;
  node.pitchSemitones.value = semitones;
  bus.disconnect();
  bus.connect(node);
  node.connect(analyser);
  stretcher = node;
  for (const id of ["speed", "pitch", "practice-reset"]) {
    document.getElementById(id).removeAttribute("disabled");
  }
}

async function load() {
  const stretching = loadStretcher().then(() => true, (error) => {
    console.warn("speed and pitch are off:", error);
    return false;
  });
  const buffers = await Promise.all(stems.map(async (stem) => {
    const response = await fetch(stem.url);
    if (!response.ok) throw new Error(`${stem.name}: HTTP ${response.status}`);
    return ctx.decodeAudioData(await response.arrayBuffer());
  }));
  buffers.forEach((buffer, i) => { stems[i].buffer = buffer; drawWave(stems[i]); });
  duration = Math.max(...buffers.map((b) => b.duration));
  if (chords.length) document.getElementById("lanes").append(chordLane());
  const stretches = await stretching;
  document.getElementById("play").removeAttribute("disabled");
  document.getElementById("status").textContent = stretches
    ? "Ready" : "Ready (this browser cannot change speed or pitch here)";
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
  else if (event.key === "[") markA();
  else if (event.key === "]") markB();
  else if (event.key === "\\") clearLoop();
});
window.addEventListener("resize", () => stems.forEach((s) => s.buffer && drawWave(s)));

// What tests (and curious users in the console) can read: the player's whole state, the
// audio graph's own values among it.
window.stemPlayer = {
  state: () => {
    const { pos, wrapped } = where();
    const index = currentChord(pos);
    return {
      ready: document.body.dataset.ready === "true", playing, time: pos, duration,
      contextTime: ctx.currentTime, level: level(), errors,
      speed, semitones, loop: loop && { ...loop }, wraps: wraps + wrapped,
      countIn: { on: countIn, bpm: data.bpm, until: countInUntil, counting: playing && ctx.currentTime < countInUntil },
      chord: index >= 0 ? chords[index].chord : null,
      graph: {
        stretcher: stretcher && { playbackRate: stretcher.playbackRate.value,
          pitchSemitones: stretcher.pitchSemitones.value },
        sources: stems.filter((s) => s.source).map((s) => ({ playbackRate: s.source.playbackRate.value,
          loop: s.source.loop, loopStart: s.source.loopStart, loopEnd: s.source.loopEnd })),
      },
      stems: stems.map((s) => ({ name: s.name, muted: s.muted, solo: s.solo,
        volume: s.volume, gain: s.gain.gain.value, effective: effectiveGain(s) })),
    };
  },
  play, pause, seek, setSpeed: (value) => setSpeed(value * 100), setSemitones, setLoop,
};

build();
(function tick() { render(); requestAnimationFrame(tick); })();
load().catch((error) => {
  errors.push(String(error));
  document.getElementById("status").textContent = `Could not load the stems: ${error.message}`;
});
