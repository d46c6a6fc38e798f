"""The HT-Demucs v4 network, with the spectrogram work around it."""

from __future__ import annotations

import contextlib
import ctypes
from pathlib import Path

from separation import dsp
from separation.dsp import Float
from separation.runtime import RuntimeConfig, open_graph

SAMPLE_RATE = 44_100
SEGMENT = 343_980  # 7.8 s: the only input length the exported graph takes
SOURCES = ("drums", "bass", "other", "vocals")

_M_MMAP_THRESHOLD = -3


def return_freed_memory() -> None:
    """Serve large allocations from mmap, so that freeing them lowers the RSS at once.

    glibc otherwise raises its mmap threshold after each large free, and later arrays
    (decoded audio, stem blocks) land in heap arenas that never shrink.
    """
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to tune
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, 256 * 1024)


class HTDemucs:
    """One loaded network; `__call__` separates one 7.8 s stereo chunk into four sources."""

    sources = SOURCES

    def __init__(self, model: Path, parts_dir: Path, config: RuntimeConfig) -> None:
        return_freed_memory()
        self._graph = open_graph(model, config, ort_parts=parts_dir)

    @property
    def description(self) -> str:
        return self._graph.description

    def __call__(self, chunk: Float) -> Float:
        """[2, SEGMENT] -> [4 sources, 2, SEGMENT]: time branch plus inverted spectral branch."""
        if chunk.shape != (2, SEGMENT):
            raise ValueError(f"chunk must be [2, {SEGMENT}], got {list(chunk.shape)}")
        packed = dsp.pack_complex(dsp.spec(chunk))
        spectral, temporal = self._graph.run([chunk[None], packed[None]])
        from_spec = dsp.ispec(dsp.unpack_complex(spectral[0]), SEGMENT)
        out: Float = temporal[0] + from_spec
        return out
