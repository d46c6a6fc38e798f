"""Song facts from the stems: tempo from the drums, key from bass, piano and other, loudness.

Collected while the engine streams its blocks, so a song is analysed once and never held
whole: the meter keeps 100 ms energies, the tempo a 30 s window, the key a 11 kHz copy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.signal import butter, sosfilt

from separation.dsp import Float
from separation.essentia_lib import standard
from separation.htdemucs import SAMPLE_RATE
from separation.loudness import LoudnessMeter

MIN_SECONDS = 5.0  # shorter songs hold too few beats and chords for an estimate
TEMPO_WINDOW = 30.0  # seconds from the middle of the song: the beat tracker's cost is linear
KEY_DECIMATION = 4  # the key is read from 25 Hz-3.5 kHz: 11 kHz keeps it, at a quarter the cost
# essentia's key profiles measured on 48 rendered songs' true stems: noland, edma, shaath,
# bgate and the rest within 30-33 right; noland kept it with the bass in or out (31, 32).
KEY_PROFILE = "noland"
# A tracker locks on twice or half the tempo when the hi-hat is busier than kick and snare;
# the beat is where those land (a low-passed copy): halve when every other beat lacks them,
# double when the off-beats hit as hard. On the same songs the two cases read < 0.05 / > 0.8
# (and 0.85-1.0 / < 0.05 where the tracker was right).
BEAT_LOW_PASS = 250.0  # Hz: kick and snare bodies, not cymbals
HALVE_BELOW = 0.35  # weaker of the two alternating beat sets, over the stronger
DOUBLE_ABOVE = 0.6  # off-beats over beats
TEMPO_RANGE = (55.0, 200.0)
ENVELOPE_HOP = 441  # 10 ms
# RhythmExtractor2013's confidence runs 0-5.32: how well its beat trackers agree. Calibrated on
# 48 rendered songs (all at 3.4 or more) and white noise (up to 2.1, on 10 s): 3.0 parts them.
TEMPO_CONFIDENCE_MAX = 5.32
TEMPO_CONFIDENCE_MIN = 3.0
# The key's correlation with its profile: the same songs 0.70 or more, white noise 0.53-0.61.
# Noise can correlate better by chance (0.76 once with another profile), so the sound must also
# be tonal: the spectral flatness of 100 Hz-3.5 kHz (median over frames) is 0.56 for white
# noise and at most 0.03 for the songs.
KEY_STRENGTH_MIN = 0.65
FLATNESS_MAX = 0.2
FLATNESS_FRAME = 4096
MAJOR_NAMES = ("C", "D♭", "D", "E♭", "E", "F", "F♯", "G", "A♭", "A", "B♭", "B")
MINOR_NAMES = ("C", "C♯", "D", "E♭", "E", "F", "F♯", "G", "G♯", "A", "B♭", "B")
PITCH_CLASSES = {"C": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "F": 5, "F#": 6,
                 "Gb": 6, "G": 7, "G#": 8, "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11}


@dataclass(frozen=True, slots=True)
class Tempo:
    bpm: float
    confidence: float  # 0-1: how well the beat trackers agree on the grid


@dataclass(frozen=True, slots=True)
class Key:
    tonic: int  # pitch class, 0 = C
    minor: bool
    confidence: float  # 0-1: correlation of the song's pitch profile with the key's

    @property
    def name(self) -> str:
        """As musicians write it: `A♭ major`, `F♯ minor`."""
        names = MINOR_NAMES if self.minor else MAJOR_NAMES
        return f"{names[self.tonic]} {'minor' if self.minor else 'major'}"


@dataclass(frozen=True, slots=True)
class SongFacts:
    """None where unclear: no beat, no key, or silence."""

    tempo: Tempo | None
    key: Key | None
    loudness: float | None  # LUFS of the mix
    stem_loudness: dict[str, float | None]

    def wire(self) -> dict[str, Any]:
        """The JSON shape of the Job API's `facts` and of `stembot separate --json`."""
        tempo = self.tempo and {"bpm": self.tempo.bpm, "confidence": self.tempo.confidence}
        key = self.key and {"name": self.key.name, "tonic": self.key.tonic,
                            "mode": "minor" if self.key.minor else "major",
                            "confidence": self.key.confidence}
        return {"tempo": tempo, "key": key,
                "loudness": {"mix": self.loudness, "stems": dict(self.stem_loudness)}}


class FactsCollector:
    """Hand it the mix, then every block of stems in order; `facts()` at the end."""

    def __init__(self, stems: tuple[str, ...]) -> None:
        self._stems = stems
        self._beat = "drums" if "drums" in stems else "other"  # 2 stems: the accompaniment
        # chords live in bass, piano and other; a voice's glides and consonants blur them
        self._harmonic_stems = [s for s in stems if s not in ("drums", "vocals")]
        self._meter = LoudnessMeter(len(stems), 2, SAMPLE_RATE)
        self._mix_loudness: float | None = None
        self._length = 0
        self._position = 0
        self._window = np.zeros(0, dtype=np.float32)
        self._window_start = 0
        self._harmonic: list[Float] = []
        self._carry = np.zeros(0, dtype=np.float32)  # samples not yet decimated
        self.seconds = 0.0  # time spent here, for the benchmark

    def begin(self, mix: Float) -> None:
        started = time.perf_counter()
        meter = LoudnessMeter(1, len(mix), SAMPLE_RATE)
        meter.add(mix[None])
        self._mix_loudness = meter.integrated()[0]
        self._length = mix.shape[-1]
        size = min(self._length, round(TEMPO_WINDOW * SAMPLE_RATE))
        self._window = np.zeros(size, dtype=np.float32)
        self._window_start = (self._length - size) // 2
        self.seconds += time.perf_counter() - started

    def add(self, block: dict[str, Float]) -> None:
        started = time.perf_counter()
        self._meter.add(np.stack([block[s] for s in self._stems]))
        self._keep_beat(block[self._beat].mean(axis=0))
        harmonic = np.sum([block[s] for s in self._harmonic_stems], axis=0)
        self._keep_harmonic(harmonic.mean(axis=0))
        self._position += block[self._beat].shape[-1]
        self.seconds += time.perf_counter() - started

    def _keep_beat(self, mono: Float) -> None:
        start = max(self._position, self._window_start)
        end = min(self._position + len(mono), self._window_start + len(self._window))
        if start < end:
            self._window[start - self._window_start : end - self._window_start] = mono[
                start - self._position : end - self._position]

    def _keep_harmonic(self, mono: Float) -> None:
        samples = np.concatenate([self._carry, mono.astype(np.float32)])
        whole = len(samples) // KEY_DECIMATION * KEY_DECIMATION
        # a 4-tap mean: a crude low-pass, enough for pitch classes under 3.5 kHz
        self._harmonic.append(samples[:whole].reshape(-1, KEY_DECIMATION).mean(axis=1))
        self._carry = samples[whole:]

    def facts(self) -> SongFacts:
        started = time.perf_counter()
        stems = dict(zip(self._stems, self._meter.integrated(), strict=True))
        long_enough = self._length >= MIN_SECONDS * SAMPLE_RATE
        audible = self._mix_loudness is not None
        tempo = estimate_tempo(self._window) if long_enough and audible else None
        harmonic = np.concatenate(self._harmonic) if self._harmonic else self._carry
        key = estimate_key(harmonic) if long_enough and audible else None
        self.seconds += time.perf_counter() - started
        return SongFacts(tempo, key, _rounded(self._mix_loudness),
                         {s: _rounded(v) for s, v in stems.items()})


def _rounded(lufs: float | None) -> float | None:
    return None if lufs is None else round(lufs, 2)


def estimate_tempo(mono: Float) -> Tempo | None:
    """essentia's multi-feature beat tracker; None when its trackers do not agree."""
    samples = np.ascontiguousarray(mono, dtype=np.float32)
    bpm, beats, confidence, _, _ = standard.RhythmExtractor2013(method="multifeature")(samples)
    if confidence < TEMPO_CONFIDENCE_MIN or bpm <= 0:
        return None
    bpm = settle_octave(float(bpm), np.asarray(beats, dtype=np.float64), samples)
    return Tempo(round(bpm, 1), round(float(confidence) / TEMPO_CONFIDENCE_MAX, 2))


def settle_octave(bpm: float, beats: npt.NDArray[np.float64], mono: Float) -> float:
    """Halve or double `bpm` when kick and snare say the tracker took the wrong octave."""
    if len(beats) < 8:
        return bpm
    low = sosfilt(butter(4, BEAT_LOW_PASS, fs=SAMPLE_RATE, output="sos"), mono)
    frames = len(low) // ENVELOPE_HOP
    rms = np.sqrt(np.mean(low[: frames * ENVELOPE_HOP].reshape(frames, -1) ** 2, axis=1))
    onsets = np.maximum(np.diff(rms, prepend=rms[:1]), 0.0).astype(np.float32)
    on = _strength(onsets, beats)
    off = _strength(onsets, (beats[1:] + beats[:-1]) / 2)
    sets = sorted((float(on[0::2].mean()), float(on[1::2].mean())))
    if sets[1] > 0 and sets[0] / sets[1] < HALVE_BELOW and bpm / 2 >= TEMPO_RANGE[0]:
        return bpm / 2
    if on.mean() > 0 and off.mean() / on.mean() > DOUBLE_ABOVE and bpm * 2 <= TEMPO_RANGE[1]:
        return bpm * 2
    return bpm


def _strength(onsets: Float, times: npt.NDArray[np.float64]) -> Float:
    """The strongest onset within ±30 ms of each time."""
    frames = np.clip(np.round(times * SAMPLE_RATE / ENVELOPE_HOP).astype(int), 0, len(onsets) - 1)
    padded = np.pad(onsets, 3)
    strongest: Float = np.max([padded[frames + k] for k in range(7)], axis=0).astype(np.float32)
    return strongest


def flatness(mono: Float, rate: float) -> float:
    """Median spectral flatness of 100 Hz-3.5 kHz over the audible frames: 1 flat, 0 tonal."""
    frames = len(mono) // FLATNESS_FRAME
    if frames == 0:
        return 1.0
    shaped = mono[: frames * FLATNESS_FRAME].reshape(frames, FLATNESS_FRAME)
    power = np.abs(np.fft.rfft(shaped * np.hanning(FLATNESS_FRAME), axis=1)) ** 2
    freqs = np.fft.rfftfreq(FLATNESS_FRAME, 1 / rate)
    power = power[:, (freqs >= 100) & (freqs <= 3500)] + 1e-12
    mean = power.mean(axis=1)
    audible = mean > mean.max() * 1e-3
    geometric = np.exp(np.log(power[audible]).mean(axis=1))
    return float(np.median(geometric / mean[audible]))


def estimate_key(mono: Float) -> Key | None:
    """essentia's key extractor on a mono copy at 11 kHz; None for noise or no clear key."""
    rate = SAMPLE_RATE / KEY_DECIMATION
    if flatness(mono, rate) > FLATNESS_MAX:
        return None
    name, scale, strength = standard.KeyExtractor(profileType=KEY_PROFILE, sampleRate=rate)(
        np.ascontiguousarray(mono, dtype=np.float32))
    if strength < KEY_STRENGTH_MIN or name not in PITCH_CLASSES:
        return None
    return Key(PITCH_CLASSES[name], scale == "minor", round(float(strength), 2))


def song_facts(mix: Float, stems: dict[str, Float]) -> SongFacts:
    """The facts of whole arrays at once (tests, short clips)."""
    collector = FactsCollector(tuple(stems))
    collector.begin(mix)
    collector.add(stems)
    return collector.facts()
