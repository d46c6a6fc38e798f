"""The piano model: takes the piano out of the 4-stem network's stems.

The network predicts, for each stem it reads (the model's metadata names them: v1 reads
`other` alone, v2 all four), a mask in [0, 1] on that stem's STFT magnitude. Each masked
stem inverted is the piano that stem holds; the piano is their sum and each stem keeps the
rest, so the five stems always add up to the four (the identity `split` keeps). Audio is
processed in hop-aligned windows with enough context on each side that block-wise
streaming gives the same samples as one pass over the whole clip.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from separation import dsp
from separation.dsp import Float
from separation.presets import StemPreset
from separation.runtime import RuntimeConfig, onnx_metadata, open_graph

N_FFT = 2048
HOP = 512
BINS = N_FFT // 2 + 1
BLOCK_FRAMES = 512  # ~6 s of output per window: context overhead stays under ~25 %
FOUR_STEMS = StemPreset.FOUR_STEMS.stems  # what a piano model may read

Stems = dict[str, Float]


class PianoModel:
    """One loaded piano network; `takes(stems)` gives the piano each read stem holds."""

    def __init__(self, path: Path, config: RuntimeConfig | None = None) -> None:
        meta = onnx_metadata(path)
        if int(meta.get("n_fft", N_FFT)) != N_FFT or int(meta.get("hop", HOP)) != HOP:
            raise ValueError(f"{path.name}: STFT settings differ from n_fft {N_FFT}, hop {HOP}")
        self.sources = tuple(meta.get("sources", "other").split(","))
        if not self.sources or not set(self.sources) <= set(FOUR_STEMS):
            raise ValueError(f"{path.name}: reads unknown stems {meta.get('sources')!r}")
        receptive = int(meta["receptive_frames"])
        # frames whose STFT window reaches the window edge, plus the network's reach
        self.context = (receptive + N_FFT // HOP + 1) * HOP
        self._graph = open_graph(path, config or RuntimeConfig())

    def mask(self, magnitude: Float) -> Float:
        """[2·S, BINS, T] magnitudes of the read stems -> [2·S, BINS, T] piano masks."""
        (out,) = self._graph.run([magnitude[None]])
        mask: Float = out[0]
        return mask

    def takes_of_window(self, stems: Float) -> Float:
        """Piano in each of the [S, 2, n] read stems of one window, in a single pass."""
        sources, channels, length = stems.shape
        z = dsp.stft(stems.reshape(sources * channels, length), N_FFT, HOP)
        mask = self.mask(np.abs(z).astype(np.float32))
        taken = dsp.istft((z * mask).astype(np.complex64), length, HOP)
        return taken.reshape(sources, channels, length)

    def stack(self, stems: Stems) -> Float:
        """The read stems of a 4-stem block as one [S, 2, n] array, in the model's order."""
        return np.stack([stems[name] for name in self.sources]).astype(np.float32, copy=False)

    def takes(self, stems: Stems) -> Float:
        """Piano in each read stem of a whole clip, window by window so memory stays bounded."""
        stacked, stream = self.stack(stems), PianoStream(self)
        blocks = [*stream.push(stacked), *stream.finish()]
        return np.concatenate(blocks, axis=-1) if blocks else np.zeros_like(stacked)

    def piano(self, stems: Stems) -> Float:
        """The piano of a whole clip's 4 stems (the sum of what each read stem holds)."""
        piano: Float = self.takes(stems).sum(axis=0)
        return piano


class PianoStream:
    """Feeds consecutive [S, 2, n] blocks of the read stems; returns their piano as it settles."""

    def __init__(self, model: PianoModel, block_frames: int = BLOCK_FRAMES) -> None:
        self._model = model
        self._block = block_frames * HOP
        self._buffer = np.zeros((len(model.sources), 2, 0), dtype=np.float32)
        self._buffer_start = 0  # absolute sample index of _buffer[:, 0]
        self._done = 0  # absolute samples of piano already returned

    def push(self, stems: Float) -> list[Float]:
        """Add samples; return every block of takes whose right context is now available."""
        self._buffer = np.concatenate([self._buffer, stems.astype(np.float32)], axis=-1)
        out: list[Float] = []
        while self._end() >= self._done + self._block + self._model.context:
            out.append(
                self._emit(self._done + self._block, self._done + self._block + self._model.context)
            )
        return out

    def finish(self) -> list[Float]:
        """Return the rest of the takes, up to the last sample pushed."""
        if self._end() <= self._done:
            return []
        return [self._emit(self._end(), self._end())]

    def _end(self) -> int:
        return self._buffer_start + self._buffer.shape[-1]

    def _emit(self, stop: int, window_stop: int) -> Float:
        """Takes for [done, stop) from the window [done - context, window_stop)."""
        window_start = max(0, self._done - self._model.context)
        lo, hi = window_start - self._buffer_start, window_stop - self._buffer_start
        takes = self._model.takes_of_window(self._buffer[..., lo:hi])
        block = takes[..., self._done - window_start : stop - window_start]
        self._done = stop
        # keep only the left context the next window needs
        keep_from = max(0, self._done - self._model.context) - self._buffer_start
        self._buffer = self._buffer[..., keep_from:]
        self._buffer_start += keep_from
        return np.ascontiguousarray(block)


def split(stems: Stems, takes: Float, sources: tuple[str, ...]) -> Stems:
    """Four stems and the piano each read stem holds -> the five stems, in delivery order.

    The identity kept: piano + vocals + drums + bass + other equals the four stems' sum,
    and each stem not read is passed through untouched.
    """
    rest = dict(stems)
    for name, taken in zip(sources, takes, strict=True):
        rest[name] = stems[name] - taken
    piano: Float = takes.sum(axis=0)
    return {
        "vocals": rest["vocals"],
        "drums": rest["drums"],
        "bass": rest["bass"],
        "piano": piano,
        "other": rest["other"],
    }


def five_stems(blocks: Iterable[Stems], model: PianoModel) -> Iterator[Stems]:
    """Turn a stream of 4-stem blocks into 5-stem blocks, delaying the stems to match piano."""
    stream = PianoStream(model)
    pending: list[Stems] = []
    for block in blocks:
        pending.append(block)
        for takes in stream.push(model.stack(block)):
            yield split(_take(pending, takes.shape[-1]), takes, model.sources)
    for takes in stream.finish():
        yield split(_take(pending, takes.shape[-1]), takes, model.sources)


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
