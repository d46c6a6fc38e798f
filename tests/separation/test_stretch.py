"""Tempo and pitch through Rubber Band on signals whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from separation.dsp import Float
from separation.htdemucs import SAMPLE_RATE
from separation.stretch import stretch
from separation.tempo import estimate_tempo


def stereo(mono: Float) -> Float:
    return np.stack([mono, mono]).astype(np.float32)


def tone(hz: float, seconds: float) -> Float:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return stereo(0.5 * np.sin(2 * np.pi * hz * t))


def clicks(bpm: float, seconds: float) -> Float:
    """A kick-like thump (60 Hz, 80 ms decay) with a noise tick on every beat."""
    rng = np.random.default_rng(7)
    out = np.zeros(int(seconds * SAMPLE_RATE))
    t = np.arange(int(0.08 * SAMPLE_RATE)) / SAMPLE_RATE
    hit = np.exp(-t / 0.02) * (np.sin(2 * np.pi * 60 * t) + 0.3 * rng.standard_normal(t.size))
    step = 60 / bpm * SAMPLE_RATE
    for n in range(int(seconds * bpm / 60)):
        start = int(n * step)
        out[start:start + hit.size] += hit[: len(out) - start]
    return stereo(0.5 * out)


def peak_hz(audio: Float) -> float:
    spectrum = np.abs(np.fft.rfft(audio[0] * np.hanning(audio.shape[1])))
    return float(np.argmax(spectrum) * SAMPLE_RATE / audio.shape[1])


def test_twelve_semitones_up_is_an_octave_at_the_same_length() -> None:
    source = tone(440, 4.0)
    shifted = stretch(source, semitones=12)
    assert peak_hz(shifted) == pytest.approx(880, rel=0.01)
    assert shifted.shape[1] == pytest.approx(source.shape[1], rel=0.01)


def test_tempo_0_8_makes_ten_seconds_twelve_and_a_half_at_the_same_pitch() -> None:
    slowed = stretch(tone(440, 10.0), tempo=0.8)
    assert slowed.shape[1] / SAMPLE_RATE == pytest.approx(12.5, rel=0.01)
    assert peak_hz(slowed) == pytest.approx(440, rel=0.01)


def test_a_click_track_at_120_bpm_measures_96_after_tempo_0_8() -> None:
    source = clicks(120, 20.0)
    before = estimate_tempo(source.mean(axis=0))
    assert before is not None and before.bpm == pytest.approx(120, rel=0.01)
    after = estimate_tempo(stretch(source, tempo=0.8).mean(axis=0))
    assert after is not None and after.bpm == pytest.approx(96, rel=0.01)


def test_no_change_is_the_audio_itself() -> None:
    source = tone(440, 1.0)
    assert stretch(source) is source
