"""Song facts from the stems: tempo from the drums, key and chords from bass, piano and other,
loudness.

Collected while the engine streams its blocks, so a song is analysed once and never held
whole: the meter keeps 100 ms energies, the tempo a 30 s window, the key a 11 kHz copy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from separation.chords import CHORD_BASS_GAIN, CHORD_HARMONICS, Chord, chroma, estimate_chords
from separation.dsp import Float
from separation.htdemucs import SAMPLE_RATE
from separation.key import KEY_DECIMATION, Key, estimate_key, tonal
from separation.loudness import LoudnessMeter
from separation.tempo import Tempo, estimate_tempo

MIN_SECONDS = 5.0  # shorter songs hold too few beats and chords for an estimate
TEMPO_WINDOW = 30.0  # seconds from the middle of the song: the beat tracker's cost is linear


@dataclass(frozen=True, slots=True)
class SongFacts:
    """None where unclear: no beat, no key, or silence."""

    tempo: Tempo | None
    key: Key | None
    loudness: float | None  # LUFS of the mix
    stem_loudness: dict[str, float | None]
    chords: tuple[Chord, ...] = ()  # in order, covering the song; none for noise, silence, < 5 s

    def wire(self) -> dict[str, Any]:
        """The JSON shape of the Job API's `facts` and of `stembot separate --json`."""
        tempo = self.tempo and {"bpm": self.tempo.bpm, "confidence": self.tempo.confidence}
        key = self.key and {"name": self.key.name, "tonic": self.key.tonic,
                            "mode": "minor" if self.key.minor else "major",
                            "confidence": self.key.confidence}
        flats = spelt_with_flats(self.key) if self.key else None
        chords = [{"start": c.start, "end": c.end, "chord": c.name(flats)} for c in self.chords]
        return {"tempo": tempo, "key": key, "chords": chords,
                "loudness": {"mix": self.loudness, "stems": dict(self.stem_loudness)}}


# keys written with flats (F major, D minor, ...) and with sharps (G major, E minor, ...); C major
# and A minor have neither, so their chords keep the plain names (Bb, F#m)
FLAT_MAJOR_TONICS = frozenset((1, 3, 5, 8, 10))
FLAT_MINOR_TONICS = frozenset((0, 2, 3, 5, 7, 10))


def spelt_with_flats(key: Key) -> bool | None:
    """Whether the key's signature has flats (True), sharps (False) or neither (None)."""
    if (key.tonic, key.minor) in ((0, False), (9, True)):
        return None
    return key.tonic in (FLAT_MINOR_TONICS if key.minor else FLAT_MAJOR_TONICS)


class FactsCollector:
    """Hand it the mix (`begin`, or `add_mix` blocks then `start`), then every block of stems in
    order; `facts()` at the end."""

    def __init__(self, stems: tuple[str, ...]) -> None:
        self._stems = stems
        self._beat = "drums" if "drums" in stems else "other"  # 2 stems: the accompaniment
        # chords live in bass, piano and other; a voice's glides and consonants blur them
        self._harmonic_stems = [s for s in stems if s not in ("drums", "vocals")]
        self._meter = LoudnessMeter(len(stems), 2, SAMPLE_RATE)
        self._mix_meter = LoudnessMeter(1, 2, SAMPLE_RATE)
        self._mix_loudness: float | None = None
        self._length = 0
        self._position = 0
        self._window = np.zeros(0, dtype=np.float32)
        self._window_start = 0
        self._harmonic = _Decimated()
        # the chords hear the bass quieter: its harmonics (a fifth, a major third up) would
        # read minor chords as major; with 2 stems it is in `other` and stays as it is
        self._chordal = _Decimated() if "bass" in stems and self._harmonic_stems != ["bass"] \
            else None
        self.seconds = 0.0  # time spent here, for the benchmark

    def begin(self, mix: Float) -> None:
        """The whole mix at once: `add_mix`, then `start`."""
        self.add_mix(mix)
        self.start(mix.shape[-1])

    def add_mix(self, block: Float) -> None:
        """One [2, n] block of the mix, in order, before `start` (its loudness)."""
        started = time.perf_counter()
        self._mix_meter.add(block[None])
        self.seconds += time.perf_counter() - started

    def start(self, length: int) -> None:
        """The mix is measured and `length` samples long; the stems' blocks come next."""
        self._mix_loudness = self._mix_meter.integrated()[0]
        self._length = length
        size = min(self._length, round(TEMPO_WINDOW * SAMPLE_RATE))
        self._window = np.zeros(size, dtype=np.float32)
        self._window_start = (self._length - size) // 2

    def add(self, block: dict[str, Float]) -> None:
        started = time.perf_counter()
        self._meter.add(np.stack([block[s] for s in self._stems]))
        self._keep_beat(block[self._beat].mean(axis=0))
        harmonic = np.sum([block[s] for s in self._harmonic_stems], axis=0)
        self._harmonic.add(harmonic.mean(axis=0))
        if self._chordal is not None:
            quieter = harmonic - np.float32(1 - CHORD_BASS_GAIN) * block["bass"]
            self._chordal.add(quieter.mean(axis=0))
        self._position += block[self._beat].shape[-1]
        self.seconds += time.perf_counter() - started

    def _keep_beat(self, mono: Float) -> None:
        start = max(self._position, self._window_start)
        end = min(self._position + len(mono), self._window_start + len(self._window))
        if start < end:
            self._window[start - self._window_start : end - self._window_start] = mono[
                start - self._position : end - self._position]

    def facts(self) -> SongFacts:
        started = time.perf_counter()
        stems = dict(zip(self._stems, self._meter.integrated(), strict=True))
        long_enough = self._length >= MIN_SECONDS * SAMPLE_RATE
        audible = self._mix_loudness is not None
        tempo = estimate_tempo(self._window) if long_enough and audible else None
        harmonic = self._harmonic.signal()
        key: Key | None = None
        chords: tuple[Chord, ...] = ()
        if long_enough and audible and tonal(harmonic):
            rate = SAMPLE_RATE / KEY_DECIMATION
            chordal = harmonic if self._chordal is None else self._chordal.signal()
            frames = chroma(chordal, rate, harmonics=CHORD_HARMONICS)
            chords = tuple(estimate_chords(frames, self._length / SAMPLE_RATE))
            key = estimate_key(harmonic, chords)
        self.seconds += time.perf_counter() - started
        return SongFacts(tempo, key, _rounded(self._mix_loudness),
                         {s: _rounded(v) for s, v in stems.items()}, chords)


class _Decimated:
    """A mono signal kept at 11 kHz (`KEY_DECIMATION`) as its blocks come."""

    def __init__(self) -> None:
        self._parts: list[Float] = []
        self._carry = np.zeros(0, dtype=np.float32)  # samples not yet decimated

    def add(self, mono: Float) -> None:
        samples = np.concatenate([self._carry, mono.astype(np.float32)])
        whole = len(samples) // KEY_DECIMATION * KEY_DECIMATION
        # a 4-tap mean: a crude low-pass, enough for pitch classes under 3.5 kHz
        self._parts.append(samples[:whole].reshape(-1, KEY_DECIMATION).mean(axis=1))
        self._carry = samples[whole:]

    def signal(self) -> Float:
        return np.concatenate(self._parts) if self._parts else self._carry


def _rounded(lufs: float | None) -> float | None:
    return None if lufs is None else round(lufs, 2)


def song_facts(mix: Float, stems: dict[str, Float]) -> SongFacts:
    """The facts of whole arrays at once (tests, short clips)."""
    collector = FactsCollector(tuple(stems))
    collector.begin(mix)
    collector.add(stems)
    return collector.facts()
