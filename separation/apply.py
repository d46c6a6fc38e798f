"""Chunked inference: 25 % overlap, triangular cross-fade, finished audio streamed out.

Follows Demucs' `apply_model` split path. Chunks are processed in order, so once chunk k
has been added, every sample before chunk k+1's start is final and can leave memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from separation.dsp import Float

ChunkModel = Callable[[Float], Float]
"""[channels, segment] -> [sources, channels, segment]."""

Progress = Callable[[int, int], None]
"""Called with (chunks done, chunks total)."""


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
    overlap: float = 0.25

    @property
    def stride(self) -> int:
        return int((1 - self.overlap) * self.segment)

    @property
    def offsets(self) -> range:
        return range(0, self.length, self.stride)

    @property
    def total(self) -> int:
        return len(self.offsets)


def padded_chunk(mix: Float, offset: int, segment: int) -> Float:
    """`segment` samples centred on mix[offset : offset + segment], zero-padded past the ends.

    A short final chunk takes real context from before it, as Demucs' TensorChunk does.
    """
    length = min(segment, mix.shape[-1] - offset)
    start = offset - (segment - length) // 2
    lo, hi = max(0, start), min(mix.shape[-1], start + segment)
    chunk = np.zeros((*mix.shape[:-1], segment), dtype=np.float32)
    chunk[..., lo - start : hi - start] = mix[..., lo:hi]
    return chunk


def stream_chunks(
    model: ChunkModel,
    mix: Float,
    segment: int,
    sources: int,
    progress: Progress | None = None,
    overlap: float = 0.25,
) -> Iterator[Float]:
    """Yield [sources, channels, n] blocks that, concatenated, are the separated signal."""
    plan = ChunkPlan(mix.shape[-1], segment, overlap)
    weight = triangle_weight(segment)
    acc = np.zeros((sources, mix.shape[0], segment), dtype=np.float32)
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
) -> Float:
    """The whole separation as one [sources, channels, length] array."""
    out = np.empty((sources, *mix.shape), dtype=np.float32)
    position = 0
    for block in stream_chunks(model, mix, segment, sources, progress):
        out[..., position : position + block.shape[-1]] = block
        position += block.shape[-1]
    return out
