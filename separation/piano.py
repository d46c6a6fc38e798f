"""The piano model: splits the 4-stem `other` into piano and the rest.

The network predicts a mask in [0, 1] on the STFT magnitude of `other`; piano is the
masked STFT inverted, and the new `other` is `other - piano`, so the two always sum back
to the 4-stem `other`. Audio is processed in hop-aligned windows with enough context on
each side that block-wise streaming gives the same samples as one pass over the whole clip.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from separation import dsp
from separation.dsp import Float
from separation.runtime import RuntimeConfig, onnx_metadata, open_graph

N_FFT = 2048
HOP = 512
BINS = N_FFT // 2 + 1
BLOCK_FRAMES = 512  # ~6 s of output per window: context overhead stays under ~25 %

Stems = dict[str, Float]


class PianoModel:
    """One loaded piano network; `piano(other)` gives the piano part of a [2, n] `other`."""

    def __init__(self, path: Path, config: RuntimeConfig | None = None) -> None:
        meta = onnx_metadata(path)
        if int(meta.get("n_fft", N_FFT)) != N_FFT or int(meta.get("hop", HOP)) != HOP:
            raise ValueError(f"{path.name}: STFT settings differ from n_fft {N_FFT}, hop {HOP}")
        receptive = int(meta["receptive_frames"])
        # frames whose STFT window reaches the window edge, plus the network's reach
        self.context = (receptive + N_FFT // HOP + 1) * HOP
        self._graph = open_graph(path, config or RuntimeConfig())

    def mask(self, magnitude: Float) -> Float:
        """[2, BINS, T] magnitude -> [2, BINS, T] piano mask."""
        (out,) = self._graph.run([magnitude[None]])
        mask: Float = out[0]
        return mask

    def piano_of_window(self, other: Float) -> Float:
        """Piano of one [2, n] window in a single pass (edges see reflect padding)."""
        z = dsp.stft(other, N_FFT, HOP)
        mask = self.mask(np.abs(z).astype(np.float32))
        return dsp.istft((z * mask).astype(np.complex64), other.shape[-1], HOP)

    def piano(self, other: Float) -> Float:
        """Piano of a whole [2, n] `other`, window by window so memory stays bounded."""
        stream = PianoStream(self)
        blocks = [*stream.push(other), *stream.finish()]
        return np.concatenate(blocks, axis=-1) if blocks else np.zeros_like(other)


class PianoStream:
    """Feeds consecutive blocks of `other`; returns consecutive blocks of piano as they settle."""

    def __init__(self, model: PianoModel, block_frames: int = BLOCK_FRAMES) -> None:
        self._model = model
        self._block = block_frames * HOP
        self._buffer = np.zeros((2, 0), dtype=np.float32)
        self._buffer_start = 0  # absolute sample index of _buffer[:, 0]
        self._done = 0  # absolute samples of piano already returned

    def push(self, other: Float) -> list[Float]:
        """Add samples; return every piano block whose right context is now available."""
        self._buffer = np.concatenate([self._buffer, other.astype(np.float32)], axis=-1)
        out: list[Float] = []
        while self._end() >= self._done + self._block + self._model.context:
            out.append(
                self._emit(self._done + self._block, self._done + self._block + self._model.context)
            )
        return out

    def finish(self) -> list[Float]:
        """Return the rest of the piano, up to the last sample pushed."""
        if self._end() <= self._done:
            return []
        return [self._emit(self._end(), self._end())]

    def _end(self) -> int:
        return self._buffer_start + self._buffer.shape[-1]

    def _emit(self, stop: int, window_stop: int) -> Float:
        """Piano for [done, stop) from the window [done - context, window_stop)."""
        window_start = max(0, self._done - self._model.context)
        lo, hi = window_start - self._buffer_start, window_stop - self._buffer_start
        piano = self._model.piano_of_window(self._buffer[:, lo:hi])
        block = piano[:, self._done - window_start : stop - window_start]
        self._done = stop
        # keep only the left context the next window needs
        keep_from = max(0, self._done - self._model.context) - self._buffer_start
        self._buffer = self._buffer[:, keep_from:]
        self._buffer_start += keep_from
        return np.ascontiguousarray(block)


def split(stems: Stems, piano: Float) -> Stems:
    """Four stems plus the piano of their `other` -> the five stems, in delivery order."""
    other = stems["other"]
    return {
        "vocals": stems["vocals"],
        "drums": stems["drums"],
        "bass": stems["bass"],
        "piano": piano,
        "other": other - piano,
    }


def five_stems(blocks: Iterable[Stems], model: PianoModel) -> Iterator[Stems]:
    """Turn a stream of 4-stem blocks into 5-stem blocks, delaying the others to match piano."""
    stream = PianoStream(model)
    pending: list[Stems] = []
    for block in blocks:
        pending.append(block)
        for piano in stream.push(block["other"]):
            yield split(_take(pending, piano.shape[-1]), piano)
    for piano in stream.finish():
        yield split(_take(pending, piano.shape[-1]), piano)


def _take(pending: list[Stems], length: int) -> Stems:
    """Remove the first `length` samples of every stem from the queue of 4-stem blocks."""
    parts: dict[str, list[Float]] = {stem: [] for stem in pending[0]}
    taken = 0
    while taken < length:
        block = pending[0]
        size = next(iter(block.values())).shape[-1]
        need = min(size, length - taken)
        for stem, samples in block.items():
            parts[stem].append(samples[:, :need])
        if need == size:
            pending.pop(0)
        else:
            pending[0] = {stem: samples[:, need:] for stem, samples in block.items()}
        taken += need
    return {stem: np.concatenate(chunks, axis=-1) for stem, chunks in parts.items()}
