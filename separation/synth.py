"""Render multitrack clips with known stems: MIDI through FluidSynth, speech from espeak-ng.

Used by `stembot up`'s demo, by the tests (separation quality on real instruments)
and by the piano model's data recipe. Each stem is rendered alone; the mix is their sum.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from separation.audio import SAMPLE_RATE, decode
from separation.dsp import Float

SOUNDFONT_DIRS = (Path("/usr/share/sounds/sf2"), Path("/usr/share/soundfonts"))
DRUM_CHANNEL = 9


@dataclass(frozen=True, slots=True)
class Note:
    start: float  # beats
    length: float  # beats
    pitch: int
    velocity: int = 96


@dataclass(slots=True)
class Part:
    """One instrument: a General MIDI program (ignored on the drum channel) and its notes."""

    program: int
    notes: list[Note] = field(default_factory=list)
    channel: int = 0


def write_midi(path: Path, parts: list[Part], bpm: float = 120.0, ppq: int = 480) -> Path:
    """A Standard MIDI File, type 1: a tempo track, then one track per part."""
    tempo = round(60_000_000 / bpm).to_bytes(3, "big")
    tracks = [_track([(0, b"\xff\x51\x03" + tempo)])]
    for part in parts:
        events: list[tuple[int, bytes]] = []
        if part.channel != DRUM_CHANNEL:
            events.append((0, bytes([0xC0 | part.channel, part.program & 0x7F])))
        for note in part.notes:
            on, off = round(note.start * ppq), round((note.start + note.length) * ppq)
            events.append((on, bytes([0x90 | part.channel, note.pitch, note.velocity])))
            events.append((off, bytes([0x80 | part.channel, note.pitch, 0])))
        # note-offs before note-ons at the same tick, so repeated notes retrigger
        events.sort(key=lambda e: (e[0], e[1][0] & 0xF0 == 0x90))
        tracks.append(_track(events))
    header = b"MThd" + (6).to_bytes(4, "big") + (1).to_bytes(2, "big")
    header += len(tracks).to_bytes(2, "big") + ppq.to_bytes(2, "big")
    path.write_bytes(header + b"".join(tracks))
    return path


def _track(events: list[tuple[int, bytes]]) -> bytes:
    body, now = bytearray(), 0
    for tick, message in events:
        body += _varlen(tick - now) + message
        now = tick
    body += b"\x00\xff\x2f\x00"
    return b"MTrk" + len(body).to_bytes(4, "big") + bytes(body)


def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    while value := value >> 7:
        out.append(0x80 | (value & 0x7F))
    return bytes(reversed(out))


def find_soundfont(name: str = "FluidR3_GM.sf2") -> Path:
    for folder in SOUNDFONT_DIRS:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"soundfont {name} not found (install fluid-soundfont-gm)")


def render(midi: Path, out: Path, soundfont: Path | None = None, gain: float = 0.5) -> Path:
    """Render a MIDI file to a float WAV at 44.1 kHz with reverb and chorus off."""
    if shutil.which("fluidsynth") is None:
        raise FileNotFoundError("fluidsynth not found (install the fluidsynth package)")
    command = [
        "fluidsynth",
        "-ni",
        "-q",
        "-g",
        str(gain),
        "-r",
        str(SAMPLE_RATE),
        "-O",
        "float",
        "-R",
        "0",
        "-C",
        "0",
        # load samples on demand: a compressed .sf3 would otherwise be decoded whole each call
        "-o",
        "synth.dynamic-sample-loading=1",
        "-F",
        str(out),
        str(soundfont or find_soundfont()),
        str(midi),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    return out


def speak(text: str, out: Path, pitch: int = 60, speed: int = 140) -> Path:
    """Speech from espeak-ng: the stand-in for a vocal line."""
    if shutil.which("espeak-ng") is None:
        raise FileNotFoundError("espeak-ng not found (install the espeak-ng package)")
    command = ["espeak-ng", "-p", str(pitch), "-s", str(speed), "-w", str(out), text]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return out


def render_part(part: Part, length: int, bpm: float, soundfont: Path | None = None) -> Float:
    """One part as [2, length] float32 at 44.1 kHz."""
    with tempfile.TemporaryDirectory() as tmp:
        midi = write_midi(Path(tmp) / "part.mid", [part], bpm)
        return fit(decode(render(midi, Path(tmp) / "part.wav", soundfont)), length)


def fit(x: Float, length: int) -> Float:
    """Cut or zero-pad [2, n] to exactly `length` samples."""
    out = np.zeros((x.shape[0], length), dtype=np.float32)
    n = min(length, x.shape[1])
    out[:, :n] = x[:, :n]
    return out


BARS_TEXT = "la la la, we sing along tonight, under the bright and shining lights, oh oh oh"


def demo_parts(bars: int) -> dict[str, Part]:
    """A four-stem arrangement: drums, a bass line, organ chords (the `other` stem)."""
    chords = [(45, (57, 60, 64)), (41, (53, 57, 60)), (48, (55, 60, 64)), (43, (55, 59, 62))]
    drums = Part(0, channel=DRUM_CHANNEL)
    bass = Part(33)
    keys = Part(16, channel=1)
    for bar in range(bars):
        root, triad = chords[bar % len(chords)]
        t = bar * 4.0
        for beat in range(4):
            drums.notes.append(Note(t + beat, 0.25, 36 if beat % 2 == 0 else 38, 110))
            drums.notes += [Note(t + beat + h, 0.25, 42, 70) for h in (0.0, 0.5)]
            bass.notes.append(Note(t + beat, 0.9, root, 100))
        keys.notes += [Note(t, 3.9, p, 70) for p in triad]
    return {"drums": drums, "bass": bass, "other": keys}


def demo_clip(seconds: float = 10.0, bpm: float = 120.0) -> dict[str, Float]:
    """Known stems (vocals, drums, bass, other), each [2, n]; the mix is their sum."""
    length = round(seconds * SAMPLE_RATE)
    bars = int(np.ceil(seconds * bpm / 60 / 4))
    stems = {name: render_part(part, length, bpm) for name, part in demo_parts(bars).items()}
    with tempfile.TemporaryDirectory() as tmp:
        voice = decode(speak(BARS_TEXT, Path(tmp) / "voice.wav"))
    reps = int(np.ceil(length / voice.shape[1]))
    stems["vocals"] = fit(np.tile(voice, reps) * np.float32(0.6), length)
    return {name: stems[name] for name in ("vocals", "drums", "bass", "other")}


def sdr(reference: Float, estimate: Float) -> float:
    """Global SDR in dB: 10·log10(Σs² / Σ(s−ŝ)²), as the MUSDB benchmarks report it."""
    signal = float(np.sum(reference.astype(np.float64) ** 2))
    noise = float(np.sum((reference.astype(np.float64) - estimate) ** 2))
    return 10 * float(np.log10((signal + 1e-9) / (noise + 1e-9)))
