"""STFT and inverse STFT exactly as HT-Demucs computes them around its network.

The spectral branch of the network sees `spec(chunk)` packed as real channels and
returns a complex mask-free estimate per source, which `ispec` turns back into audio.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import numpy.typing as npt

Float = npt.NDArray[np.float32]
Complex = npt.NDArray[np.complex64]

N_FFT = 4096
HOP = N_FFT // 4


@cache
def hann(n_fft: int) -> Float:
    """Periodic Hann window, as torch.hann_window builds it."""
    i = np.arange(n_fft, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(2.0 * math.pi * i / n_fft)).astype(np.float32)


def stft(x: Float, n_fft: int = N_FFT, hop: int = HOP) -> Complex:
    """Centered, reflect-padded, orthonormally scaled STFT: [..., T] -> [..., F, frames]."""
    half = n_fft // 2
    pad = [(0, 0)] * (x.ndim - 1) + [(half, half)]
    padded = np.pad(x, pad, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=-1)[..., ::hop, :]
    windowed = frames * (hann(n_fft) / np.float32(math.sqrt(n_fft)))
    z = np.fft.rfft(windowed, axis=-1).astype(np.complex64, copy=False)
    return np.swapaxes(z, -1, -2)


def istft(z: Complex, length: int, hop: int = HOP) -> Float:
    """Inverse of `stft` by windowed overlap-add, cut to `length` samples."""
    n_fft = 2 * (z.shape[-2] - 1)
    if n_fft % hop:
        raise ValueError("n_fft must be a multiple of hop")
    window = hann(n_fft)
    frames = np.fft.irfft(np.swapaxes(z, -1, -2), n=n_fft, axis=-1).astype(np.float32, copy=False)
    frames *= window * np.float32(math.sqrt(n_fft))
    signal = _overlap_add(frames, hop)
    envelope = _overlap_add(np.broadcast_to(window * window, frames.shape[-2:]), hop)
    signal /= np.where(envelope > 1e-11, envelope, 1.0)
    start = n_fft // 2
    out = signal[..., start : start + length]
    if out.shape[-1] < length:
        missing = [(0, 0)] * (out.ndim - 1) + [(0, length - out.shape[-1])]
        out = np.pad(out, missing)
    return np.ascontiguousarray(out)


def _overlap_add(frames: Float, hop: int) -> Float:
    """Sum frames [..., T, n_fft] placed `hop` apart; n_fft is a multiple of hop."""
    *lead, count, n_fft = frames.shape
    parts = n_fft // hop
    blocks = frames.reshape(*lead, count, parts, hop)
    out = np.zeros((*lead, count + parts - 1, hop), dtype=np.float32)
    for b in range(parts):
        out[..., b : b + count, :] += blocks[..., :, b, :]
    return out.reshape(*lead, (count + parts - 1) * hop)


def spec(x: Float) -> Complex:
    """HT-Demucs `_spec`: [..., L] -> [..., 2048, ceil(L / 1024)], frames aligned on the hop."""
    frames = math.ceil(x.shape[-1] / HOP)
    pad = HOP // 2 * 3
    right = pad + frames * HOP - x.shape[-1]
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, right)], mode="reflect")
    z = stft(padded)
    return z[..., :-1, 2 : 2 + frames]


def ispec(z: Complex, length: int) -> Float:
    """HT-Demucs `_ispec`: the inverse of `spec`, giving exactly `length` samples."""
    lead = [(0, 0)] * (z.ndim - 2)
    z = np.pad(z, [*lead, (0, 1), (2, 2)])
    pad = HOP // 2 * 3
    full = HOP * math.ceil(length / HOP) + 2 * pad
    x = istft(z, full)
    return np.ascontiguousarray(x[..., pad : pad + length])


def pack_complex(z: Complex) -> Float:
    """Complex [C, F, T] -> real [C*2, F, T] with (re, im) of each channel side by side."""
    packed = np.stack([z.real, z.imag], axis=1)
    return packed.reshape(z.shape[0] * 2, *z.shape[1:]).astype(np.float32)


def unpack_complex(m: Float) -> Complex:
    """Real [..., C*2, F, T] -> complex [..., C, F, T]; the inverse of `pack_complex`."""
    *lead, channels2, freqs, frames = m.shape
    pairs = m.reshape(*lead, channels2 // 2, 2, freqs, frames)
    z = np.empty((*pairs.shape[:-3], freqs, frames), dtype=np.complex64)
    z.real = pairs[..., 0, :, :]
    z.imag = pairs[..., 1, :, :]
    return z
