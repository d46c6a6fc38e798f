"""Integrated loudness after ITU-R BS.1770-4 (EBU R128), measured block by block.

The meter keeps only the K-weighting filters' state and one energy sum per channel and
100 ms, so stems streamed out of the engine are measured without being held in memory.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy.signal import sosfilt

from separation.dsp import Float

Energy = npt.NDArray[np.float64]

ABSOLUTE_GATE = -70.0  # LKFS
RELATIVE_GATE = -10.0  # LU below the absolutely gated loudness
STEP_SECONDS = 0.1  # gating blocks of 400 ms overlap by 75 %: four 100 ms steps each
BLOCK_STEPS = 4
OFFSET = -0.691  # BS.1770's constant: K-weighting's gain at 1 kHz, taken back out


def k_weighting(rate: float) -> Energy:
    """The two K-weighting stages (shelf, then high-pass) as second-order sections.

    BS.1770 gives coefficients for 48 kHz only; these are its analogue prototypes through
    the bilinear transform, as libebur128 derives them, and equal the standard's at 48 kHz.
    """
    k = math.tan(math.pi * 1681.974450955533 / rate)
    q = 0.7071752369554196
    vh = 10 ** (3.999843853973347 / 20)
    vb = vh**0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf = [(vh + vb * k / q + k * k) / a0, 2 * (k * k - vh) / a0,
             (vh - vb * k / q + k * k) / a0, 1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]
    k = math.tan(math.pi * 38.13547087602444 / rate)
    q = 0.5003270373238773
    a0 = 1 + k / q + k * k
    high_pass = [1.0, -2.0, 1.0, 1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]
    return np.array([shelf, high_pass])


class LoudnessMeter:
    """Feed [signals, channels, n] blocks in order; `integrated()` gives each signal's LUFS."""

    def __init__(self, signals: int, channels: int, rate: int) -> None:
        self._sos = k_weighting(rate).astype(np.float32)
        self._state = np.zeros((2, signals, channels, 2), dtype=np.float32)
        self._step = round(rate * STEP_SECONDS)
        self._partial: Energy = np.zeros((signals, channels))  # energy of the step being filled
        self._filled = 0  # samples in that step
        self._steps: list[Energy] = []  # [k, signals, channels] energies of whole steps

    def add(self, block: Float) -> None:
        weighted, self._state = sosfilt(self._sos, block.astype(np.float32, copy=False),
                                        axis=-1, zi=self._state)
        head = min(self._step - self._filled, weighted.shape[-1])
        self._partial += _energy(weighted[..., :head])
        self._filled += head
        if self._filled < self._step:
            return
        self._steps.append(self._partial[None].copy())
        rest = weighted[..., head:]
        whole = rest.shape[-1] // self._step
        if whole:
            shaped = rest[..., : whole * self._step].reshape(*rest.shape[:-1], whole, self._step)
            self._steps.append(np.moveaxis(_energy(shaped), -1, 0))
        tail = rest[..., whole * self._step :]
        self._partial = _energy(tail)
        self._filled = tail.shape[-1]

    def integrated(self) -> list[float | None]:
        """Gated loudness per signal in LUFS; None under 400 ms or below −70 LUFS (silence)."""
        signals = self._partial.shape[0]
        if len(self._steps) == 0:
            return [None] * signals
        steps = np.concatenate(self._steps)
        count = len(steps) - BLOCK_STEPS + 1
        if count < 1:
            return [None] * signals
        window = sum(steps[k : k + count] for k in range(BLOCK_STEPS))
        power = np.asarray(window).sum(axis=-1) / (BLOCK_STEPS * self._step)  # [blocks, signals]
        return [gated(power[:, s]) for s in range(signals)]


def _energy(x: Float) -> Energy:
    """Sum of squares over the last axis, accumulated in float64."""
    out: Energy = np.einsum("...n,...n->...", x, x, dtype=np.float64)
    return out


def gated(power: Energy) -> float | None:
    """BS.1770's two gates over the mean-square power of each 400 ms block."""
    loudness = OFFSET + 10 * np.log10(np.maximum(power, 1e-20))
    kept = power[loudness > ABSOLUTE_GATE]
    if not len(kept):
        return None
    gate = OFFSET + 10 * math.log10(float(kept.mean())) + RELATIVE_GATE
    kept = power[(loudness > ABSOLUTE_GATE) & (loudness > gate)]
    return OFFSET + 10 * math.log10(float(kept.mean()))


def integrated_loudness(audio: Float, rate: int) -> float | None:
    """The gated loudness of a whole [channels, n] signal, in LUFS."""
    meter = LoudnessMeter(1, len(audio), rate)
    meter.add(audio[None])
    return meter.integrated()[0]
