"""The HT-Demucs v4 network on ONNX Runtime, with the spectrogram work around it."""

from __future__ import annotations

import contextlib
import ctypes
import os
from functools import cache
from pathlib import Path

import onnxruntime as ort

from separation import dsp
from separation.dsp import Float
from separation.graph_split import Manifest

SAMPLE_RATE = 44_100
SEGMENT = 343_980  # 7.8 s: the only input length the exported graph takes
SOURCES = ("drums", "bass", "other", "vocals")

_M_MMAP_THRESHOLD = -3


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def session_options(threads: int | None = None, shared_arena: bool = True) -> ort.SessionOptions:
    """One intra-op thread per core, every graph optimization, one arena for all sessions.

    The network runs as a dozen sessions (see graph_split); each with its own arena, the
    arenas would add up to ~4 GB. Sharing one process-wide arena keeps the peak at the
    largest part's, and saves the page faults that fresh allocations cost every chunk.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or available_cores()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.enable_cpu_mem_arena = shared_arena
    if shared_arena:
        _register_shared_arena()
        options.add_session_config_entry("session.use_env_allocators", "1")
    return options


@cache
def _register_shared_arena() -> None:
    """Register the process-wide CPU arena that sessions opt into; once per process."""
    memory = ort.OrtMemoryInfo(
        "Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT
    )
    # 0 and -1: ONNX Runtime's defaults (no cap, power-of-two growth)
    ort.create_and_register_allocator(memory, ort.OrtArenaCfg(0, -1, -1, -1))


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

    def __init__(self, parts_dir: Path, threads: int | None = None) -> None:
        return_freed_memory()
        self._manifest = Manifest.load(parts_dir)
        options = session_options(threads)
        self._sessions = [
            ort.InferenceSession(
                str(parts_dir / part.file), options, providers=["CPUExecutionProvider"]
            )
            for part in self._manifest.parts
        ]
        self._last_use = self._manifest.last_use()

    def __call__(self, chunk: Float) -> Float:
        """[2, SEGMENT] -> [4 sources, 2, SEGMENT]: time branch plus inverted spectral branch."""
        if chunk.shape != (2, SEGMENT):
            raise ValueError(f"chunk must be [2, {SEGMENT}], got {list(chunk.shape)}")
        packed = dsp.pack_complex(dsp.spec(chunk))
        spectral, temporal = self._network(chunk[None], packed[None])
        from_spec = dsp.ispec(dsp.unpack_complex(spectral[0]), SEGMENT)
        out: Float = temporal[0] + from_spec
        return out

    def _network(self, wave: Float, spectrogram: Float) -> tuple[Float, Float]:
        """Run the parts in order, dropping each tensor after the last part that reads it."""
        wave_name, spec_name = self._manifest.graph_inputs
        tensors: dict[str, Float] = {wave_name: wave, spec_name: spectrogram}
        for index, (part, session) in enumerate(
            zip(self._manifest.parts, self._sessions, strict=True)
        ):
            results = session.run(part.outputs, {name: tensors[name] for name in part.inputs})
            tensors.update(zip(part.outputs, results, strict=True))
            for name in [n for n in tensors if self._last_use.get(n, -1) <= index]:
                del tensors[name]
        spectral_name, temporal_name = self._manifest.graph_outputs
        return tensors[spectral_name], tensors[temporal_name]
