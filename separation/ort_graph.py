"""ONNX Runtime graphs: one session per file, or the split HT-Demucs run part by part."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

import onnxruntime as ort

from separation.dsp import Float
from separation.graph_split import Manifest
from separation.runtime import available_cores


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


def _session(path: Path, threads: int | None) -> ort.InferenceSession:
    return ort.InferenceSession(
        str(path), session_options(threads), providers=["CPUExecutionProvider"]
    )


class OrtGraph:
    """A whole ONNX file in one session, always float32."""

    description = "onnxruntime f32"

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self._session = _session(path, threads)
        self._inputs = [i.name for i in self._session.get_inputs()]
        self.metadata: dict[str, str] = dict(self._session.get_modelmeta().custom_metadata_map)

    def run(self, inputs: Sequence[Float]) -> list[Float]:
        results: list[Float] = self._session.run(None, dict(zip(self._inputs, inputs, strict=True)))
        return results


class OrtPartsGraph:
    """The graph cut by graph_split, run part by part, each tensor dropped after its last use."""

    description = "onnxruntime f32"

    def __init__(self, parts_dir: Path, threads: int | None = None) -> None:
        self._manifest = Manifest.load(parts_dir)
        self._sessions = [_session(parts_dir / part.file, threads)
                          for part in self._manifest.parts]
        self._last_use = self._manifest.last_use()

    def run(self, inputs: Sequence[Float]) -> list[Float]:
        tensors: dict[str, Float] = dict(zip(self._manifest.graph_inputs, inputs, strict=True))
        for index, (part, session) in enumerate(
            zip(self._manifest.parts, self._sessions, strict=True)
        ):
            results = session.run(part.outputs, {name: tensors[name] for name in part.inputs})
            tensors.update(zip(part.outputs, results, strict=True))
            for name in [n for n in tensors if self._last_use.get(n, -1) <= index]:
                del tensors[name]
        return [tensors[name] for name in self._manifest.graph_outputs]
