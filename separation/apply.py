"""Chunked inference: overlapping chunks, triangular cross-fade, finished audio streamed out.

Follows Demucs' `apply_model` split path. Chunks are processed in order, so once chunk k
has been added, every sample before chunk k+1's start is final and can leave memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from separation.dsp import Float
from separation.mix_source import Delayed, MixSource, as_source

ChunkModel = Callable[[Float], Float]
"""[channels, segment] -> [sources, channels, segment]."""

Progress = Callable[[int, int], None]
"""Called with (chunks done, chunks total)."""

DEFAULT_OVERLAP = 0.1
"""Share of a chunk its neighbours also cover (STEMBOT_OVERLAP). Demucs uses 0.25; 0.1 runs
a sixth fewer chunks for 0.04 dB (docs/benchmarks/engine.md, "Chunk overlap")."""


def triangle_weight(segment: int) -> Float:
    """Demucs' cross-fade weight: rises 1..segment/2, falls back, peak 1."""
    half = segment // 2
    weight = np.concatenate([np.arange(1, half + 1), np.arange(segment - half, 0, -1)])
    out: Float = (weight / weight.max()).astype(np.float32)
    return out


@dataclass(frozen=True, slots=True)
class ChunkPlan:
    """Where the chunks of a `length`-sample signal start."""

    length: int
    segment: int
    overlap: float = DEFAULT_OVERLAP

    @property
    def stride(self) -> int:
        return int((1 - self.overlap) * self.segment)

    @property
    def offsets(self) -> range:
        return range(0, self.length, self.stride)

    @property
    def total(self) -> int:
        return len(self.offsets)


def padded_chunk(mix: Float | MixSource, offset: int, segment: int) -> Float:
    """`segment` samples centred on mix[offset : offset + segment], zero-padded past the ends.

    A short final chunk takes real context from before it, as Demucs' TensorChunk does.
    """
    source = as_source(mix)
    length = min(segment, source.length - offset)
    start = offset - (segment - length) // 2
    return source.window(start, start + segment)


def stream_chunks(
    model: ChunkModel,
    mix: Float | MixSource,
    segment: int,
    sources: int,
    progress: Progress | None = None,
    overlap: float = DEFAULT_OVERLAP,
) -> Iterator[Float]:
    """Yield [sources, channels, n] blocks that, concatenated, are the separated signal."""
    mix = as_source(mix)
    plan = ChunkPlan(mix.length, segment, overlap)
    weight = triangle_weight(segment)
    acc = np.zeros((sources, mix.channels, segment), dtype=np.float32)
    weight_sum = np.zeros(segment, dtype=np.float32)
    if progress:
        progress(0, plan.total)
    for index, offset in enumerate(plan.offsets):
        length = min(segment, plan.length - offset)
        out = _center_trim(model(padded_chunk(mix, offset, segment)), length)
        acc[..., :length] += weight[:length] * out
        weight_sum[:length] += weight[:length]
        done = min(plan.stride, length) if index + 1 < plan.total else length
        yield acc[..., :done] / weight_sum[:done]
        acc = _shift(acc, done)
        weight_sum = _shift(weight_sum, done)
        if progress:
            progress(index + 1, plan.total)


def _center_trim(x: Float, length: int) -> Float:
    delta = x.shape[-1] - length
    return x[..., delta // 2 : delta // 2 + length]


def _shift(x: Float, n: int) -> Float:
    """Drop the first n samples of the last axis and zero-fill the end."""
    out = np.zeros_like(x)
    out[..., : x.shape[-1] - n] = x[..., n:]
    return out


def separate_all(
    model: ChunkModel,
    mix: Float,
    segment: int,
    sources: int,
    progress: Progress | None = None,
    overlap: float = DEFAULT_OVERLAP,
) -> Float:
    """The whole separation as one [sources, channels, length] array."""
    out = np.empty((sources, *mix.shape), dtype=np.float32)
    position = 0
    for block in stream_chunks(model, mix, segment, sources, progress, overlap):
        out[..., position : position + block.shape[-1]] = block
        position += block.shape[-1]
    return out


def shift_offsets(shifts: int, max_shift: int, seed: int = 0) -> list[int]:
    """Demucs' random shifts, from a fixed seed so that a result is reproducible."""
    rng = np.random.default_rng(seed)
    return [int(rng.integers(0, max_shift)) for _ in range(shifts)]


def stream_shifted(
    model: ChunkModel,
    mix: Float | MixSource,
    segment: int,
    sources: int,
    offsets: list[int],
    max_shift: int,
    progress: Progress | None = None,
    overlap: float = DEFAULT_OVERLAP,
) -> Iterator[Float]:
    """Demucs' shift trick, streamed: the mean of separations of the mix delayed by each offset.

    The mix is padded by `max_shift` on both sides; separation k starts `offsets[k]` into the
    padding, so its first `max_shift - offsets[k]` samples precede the mix and are dropped.
    The network is not shift-invariant, and averaging over shifts smooths its chunk edges.
    """
    if len(offsets) <= 1 and not any(offsets):
        yield from stream_chunks(model, mix, segment, sources, progress, overlap)
        return
    mix = as_source(mix)
    length = mix.length
    plans = [ChunkPlan(length + max_shift - offset, segment, overlap).total for offset in offsets]
    counter = _ProgressSum(plans, progress)
    streams = [
        _drop(stream_chunks(model, Delayed(mix, max_shift - offset, length + max_shift - offset),
                            segment, sources, counter.part(k), overlap), max_shift - offset)
        for k, offset in enumerate(offsets)
    ]
    yield from _mean_of_streams(streams, sources, mix.channels, length)


class _ProgressSum:
    """Adds the chunk counts of several separations into one (done, total) report."""

    def __init__(self, totals: list[int], progress: Progress | None) -> None:
        self._done = [0] * len(totals)
        self._total = sum(totals)
        self._progress = progress

    def part(self, index: int) -> Progress:
        def report(done: int, _total: int) -> None:
            self._done[index] = done
            if self._progress:
                self._progress(sum(self._done), self._total)

        return report


def _drop(blocks: Iterator[Float], count: int) -> Iterator[Float]:
    """The same stream without its first `count` samples."""
    for block in blocks:
        if count >= block.shape[-1]:
            count -= block.shape[-1]
            continue
        yield block[..., count:]
        count = 0


def _mean_of_streams(
    streams: list[Iterator[Float]], sources: int, channels: int, length: int
) -> Iterator[Float]:
    """Advance every stream in turn and yield the mean of the samples all of them have given."""
    pending = [np.zeros((sources, channels, 0), dtype=np.float32) for _ in streams]
    emitted = 0
    while emitted < length:
        shortest = min(range(len(streams)), key=lambda k: pending[k].shape[-1])
        block = next(streams[shortest], None)
        if block is None:  # that stream is done: it holds the rest of the signal
            block = np.zeros((sources, channels, 0), dtype=np.float32)
        pending[shortest] = np.concatenate([pending[shortest], block], axis=-1)
        ready = min(min(p.shape[-1] for p in pending), length - emitted)
        if ready == 0:
            if block.shape[-1] == 0:
                raise RuntimeError("a shifted separation ended before the end of the mix")
            continue
        mean: Float = np.mean([p[..., :ready] for p in pending], axis=0, dtype=np.float32)
        yield mean
        pending = [p[..., ready:] for p in pending]
        emitted += ready
    for stream in streams:  # let each finish, which reports its last chunk
        for _ in stream:
            pass
