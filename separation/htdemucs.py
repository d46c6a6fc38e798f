"""The HT-Demucs v4 network on ONNX Runtime, with the spectrogram work around it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from separation import dsp
from separation.dsp import Float

SAMPLE_RATE = 44_100
SEGMENT = 343_980  # 7.8 s: the only input length the exported graph takes
SOURCES = ("drums", "bass", "other", "vocals")


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """One intra-op thread per core and every graph optimization."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or available_cores()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


class HTDemucs:
    """One loaded network; `__call__` separates one 7.8 s stereo chunk into four sources."""

    sources = SOURCES

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self._session = ort.InferenceSession(
            str(path), session_options(threads), providers=["CPUExecutionProvider"]
        )
        self._wave_input, self._spec_input = (i.name for i in self._session.get_inputs())

    def __call__(self, chunk: Float) -> Float:
        """[2, SEGMENT] -> [4 sources, 2, SEGMENT]: time branch plus inverted spectral branch."""
        if chunk.shape != (2, SEGMENT):
            raise ValueError(f"chunk must be [2, {SEGMENT}], got {list(chunk.shape)}")
        packed = dsp.pack_complex(dsp.spec(chunk))
        spectral, temporal = self._session.run(
            None,
            {self._wave_input: chunk[None], self._spec_input: packed[None]},
        )
        from_spec = dsp.ispec(dsp.unpack_complex(spectral[0]), SEGMENT)
        out: Float = temporal[0] + from_spec
        return out
