"""The mix as chunked inference reads it: a whole array, or a file decoded again as it goes.

Inference reads the mix in windows that move forward, so a long song need not sit decoded in
memory: a streamed mix keeps only the samples that later windows can still ask for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np

from separation.dsp import Float


class MixSource(Protocol):
    """`channels` x `length` samples, read by `window`."""

    @property
    def channels(self) -> int: ...

    @property
    def length(self) -> int: ...

    def window(self, start: int, stop: int) -> Float:
        """Samples [start, stop) as [channels, stop - start]; zeros outside [0, length)."""
        ...


def _zero_padded(data: Float, first: int, start: int, stop: int) -> Float:
    """[start, stop) of `data`, whose column 0 is sample `first`; zeros where it has none."""
    out = np.zeros((data.shape[0], stop - start), dtype=np.float32)
    lo, hi = max(start, first), min(stop, first + data.shape[1])
    if lo < hi:
        out[:, lo - start : hi - start] = data[:, lo - first : hi - first]
    return out


class ArrayMix:
    """A mix already in memory (tests, short clips, the Python API)."""

    def __init__(self, samples: Float) -> None:
        self._samples = samples

    @property
    def channels(self) -> int:
        return int(self._samples.shape[0])

    @property
    def length(self) -> int:
        return int(self._samples.shape[1])

    def window(self, start: int, stop: int) -> Float:
        return _zero_padded(self._samples, 0, start, stop)


class Delayed:
    """`source` started `delay` samples late, `length` samples long (Demucs' shifts)."""

    def __init__(self, source: MixSource, delay: int, length: int) -> None:
        self._source, self._delay, self._length = source, delay, length

    @property
    def channels(self) -> int:
        return self._source.channels

    @property
    def length(self) -> int:
        return self._length

    def window(self, start: int, stop: int) -> Float:
        out = self._source.window(start - self._delay, stop - self._delay)
        out[:, max(0, min(stop, self._length) - start):] = 0.0  # past its own end
        return out


class StreamedMix:
    """A mix decoded block by block as windows ask for it; samples more than `keep` before the
    latest window's start are dropped, so memory stays flat whatever the length."""

    def __init__(self, blocks: Callable[[], Iterator[Float]], channels: int, length: int,
                 keep: int) -> None:
        self._blocks = blocks()
        self._channels, self._length, self._keep = channels, length, keep
        self._data = np.zeros((channels, 0), dtype=np.float32)
        self._first = 0  # the sample number of self._data's column 0

    @property
    def channels(self) -> int:
        return self._channels

    @property
    def length(self) -> int:
        return self._length

    def window(self, start: int, stop: int) -> Float:
        if start < self._first and self._first > 0:
            raise RuntimeError(f"sample {start} was already dropped (kept from {self._first})")
        self._decode_until(min(stop, self._length))
        counted = self._data[:, : max(0, self._length - self._first)]  # never past `length`
        out = _zero_padded(counted, self._first, start, stop)
        self._forget_before(start - self._keep)
        return out

    def _decode_until(self, end: int) -> None:
        pending = [self._data]
        have = self._first + self._data.shape[1]
        while have < end:
            block = next(self._blocks, None)
            if block is None:
                break  # the file held fewer samples than counted: the rest reads as silence
            pending.append(block)
            have += block.shape[1]
        if len(pending) > 1:
            self._data = np.concatenate(pending, axis=1)

    def _forget_before(self, sample: int) -> None:
        drop = min(max(0, sample - self._first), self._data.shape[1])
        if drop:
            self._data = self._data[:, drop:].copy()
            self._first += drop


def as_source(mix: Float | MixSource) -> MixSource:
    return ArrayMix(mix) if isinstance(mix, np.ndarray) else mix
