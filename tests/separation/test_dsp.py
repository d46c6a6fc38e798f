"""The STFT pair and the HT-Demucs spectrogram packing."""

from __future__ import annotations

import numpy as np

from separation import dsp


def _noise(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_stft_istft_round_trip_is_exact() -> None:
    x = _noise((2, 50_000))
    y = dsp.istft(dsp.stft(x), x.shape[-1])
    assert y.shape == x.shape
    assert np.abs(y - x).max() < 1e-5


def test_stft_matches_a_direct_dft_of_one_frame() -> None:
    x = _noise((1, 20_000), seed=1)
    z = dsp.stft(x)
    frame = 3
    padded = np.pad(x[0], dsp.N_FFT // 2, mode="reflect")
    segment = padded[frame * dsp.HOP : frame * dsp.HOP + dsp.N_FFT] * dsp.hann(dsp.N_FFT)
    expected = np.fft.rfft(segment) / np.sqrt(dsp.N_FFT)
    assert np.allclose(z[0, :, frame], expected, atol=1e-4)


def test_spec_ispec_round_trip_away_from_the_edges() -> None:
    # spec drops the Nyquist bin and the outer frames, as HT-Demucs does: the chunk edges
    # are approximate, which the cross-fade hides; everywhere else the pair is exact.
    t = np.arange(343_980) / 44_100
    x = np.stack([np.sin(2 * np.pi * 440 * t), np.cos(2 * np.pi * 97 * t)]).astype(np.float32)
    z = dsp.spec(x)
    assert z.shape == (2, 2048, 336)
    y = dsp.ispec(z, x.shape[-1])
    assert y.shape == x.shape
    assert np.abs(y - x)[:, 4 * dsp.HOP : -4 * dsp.HOP].max() < 1e-5


def test_pack_unpack_complex_round_trip() -> None:
    z = (_noise((2, 8, 5)) + 1j * _noise((2, 8, 5), seed=2)).astype(np.complex64)
    packed = dsp.pack_complex(z)
    assert packed.shape == (4, 8, 5)
    # channel order is (re, im) of each audio channel, as view_as_real + permute gives
    assert np.array_equal(packed[1], z[0].imag)
    assert np.array_equal(packed[2], z[1].real)
    assert np.array_equal(dsp.unpack_complex(packed[None])[0], z)


def test_hann_is_periodic() -> None:
    window = dsp.hann(8)
    assert window[0] == 0.0
    assert np.isclose(window[4], 1.0)
    assert np.allclose(window[1:], window[1:][::-1])
