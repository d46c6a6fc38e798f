"""Per-instrument effects applied before summing, so the mix stays the exact sum of its stems.

Soundfont renders are dry and flat; real recordings are not. Level, EQ, a room and
compression on each instrument push the training data toward what the model will hear.
"""

from __future__ import annotations

import numpy as np

from separation.audio import SAMPLE_RATE
from separation.dsp import Float

Rng = np.random.Generator


def gain_db(x: Float, db: float) -> Float:
    out: Float = (x * np.float32(10 ** (db / 20))).astype(np.float32)
    return out


def equalize(rng: Rng, x: Float) -> Float:
    """A smooth random curve: a tilt plus two bell bands, up to about ±9 dB."""
    spectrum = np.fft.rfft(x, axis=-1)
    freqs = np.fft.rfftfreq(x.shape[-1], 1 / SAMPLE_RATE)
    octave = np.log2(np.maximum(freqs, 20.0) / 1000.0)
    curve_db = rng.uniform(-2.0, 2.0) * octave
    for _ in range(2):
        center, width = rng.uniform(-3.0, 3.5), rng.uniform(0.3, 1.5)
        curve_db += rng.uniform(-6.0, 6.0) * np.exp(-0.5 * ((octave - center) / width) ** 2)
    curve_db = np.clip(curve_db, -9.0, 9.0)
    shaped = np.fft.irfft(spectrum * 10 ** (curve_db / 20), n=x.shape[-1], axis=-1)
    out: Float = shaped.astype(np.float32)
    return out


def room(rng: Rng, x: Float) -> Float:
    """Convolve with a synthetic stereo room: decaying noise after a short pre-delay."""
    rt60 = rng.uniform(0.2, 1.4)
    length = int(rt60 * SAMPLE_RATE)
    t = np.arange(length) / SAMPLE_RATE
    tail = rng.standard_normal((2, length)) * np.exp(-6.9 * t / rt60)
    tail[:, : int(rng.uniform(0.005, 0.03) * SAMPLE_RATE)] = 0.0
    tail /= np.sqrt(np.sum(tail**2, axis=-1, keepdims=True))
    n = x.shape[-1] + length
    wet = np.fft.irfft(np.fft.rfft(x, n, axis=-1) * np.fft.rfft(tail, n, axis=-1), n, axis=-1)
    mix = rng.uniform(0.1, 0.5)
    out: Float = ((1 - mix) * x + mix * wet[:, : x.shape[-1]]).astype(np.float32)
    return out


def compress(rng: Rng, x: Float) -> Float:
    """A feed-forward compressor on the RMS envelope of 256-sample frames."""
    hop = 256
    frames = x.shape[-1] // hop + 1
    padded = np.pad(x, ((0, 0), (0, frames * hop - x.shape[-1])))
    rms = np.sqrt(np.mean(padded.reshape(2, frames, hop) ** 2, axis=(0, 2)) + 1e-12)
    level = 20 * np.log10(rms)
    threshold = np.percentile(level, rng.uniform(40, 80))
    ratio = rng.uniform(2.0, 6.0)
    reduction = np.minimum(0.0, (threshold - level) * (1 - 1 / ratio))
    # smooth the gain (attack/release ~ 30 ms) so it does not click
    kernel = np.ones(5) / 5
    reduction = np.convolve(reduction, kernel, mode="same")
    gain = np.interp(np.arange(x.shape[-1]), np.arange(frames) * hop, 10 ** (reduction / 20))
    out: Float = (x * gain).astype(np.float32)
    return out


def instrument(rng: Rng, x: Float) -> Float:
    """The chain for one instrument: each effect with its own probability, then a level."""
    if rng.random() < 0.6:
        x = equalize(rng, x)
    if rng.random() < 0.3:
        x = compress(rng, x)
    if rng.random() < 0.5:
        x = room(rng, x)
    return gain_db(x, float(rng.uniform(-10.0, 3.0)))
