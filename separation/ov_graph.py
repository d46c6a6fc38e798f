"""OpenVINO graphs: the ONNX file read directly, compiled once per machine and cached."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import openvino as ov

from separation.dsp import Float
from separation.runtime import Precision, RuntimeConfig, available_cores, log

_core: ov.Core | None = None


def core() -> ov.Core:
    """One OpenVINO core per process: it owns the thread pools all compiled models share."""
    global _core
    if _core is None:
        _core = ov.Core()
    return _core


def native_bf16(device: str = "CPU") -> bool:
    """Whether the device computes bfloat16 natively (OpenVINO's own report)."""
    return "BF16" in core().get_property(device, "OPTIMIZATION_CAPABILITIES")


def resolve(precision: Precision, device: str = "CPU") -> Precision:
    """`auto` becomes bf16 where it is native, else f32; an explicit choice is kept."""
    if precision is Precision.AUTO:
        return Precision.BF16 if native_bf16(device) else Precision.F32
    return precision


def cache_dir_for(path: Path, config: RuntimeConfig) -> Path | None:
    """Where compiled blobs go: beside the (real) model file, unless that is read-only.

    OpenVINO keys each blob on the model, device and settings, so one folder serves all.
    """
    cache = config.cache_dir or path.resolve().parent / "openvino-cache"
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # compile every time rather than not at all
    return cache


def compile_properties(precision: Precision, threads: int) -> dict[str, str | int]:
    """One request at a time on `threads` cores: a worker's share, not the whole machine."""
    return {
        "INFERENCE_PRECISION_HINT": precision.value,
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
        "INFERENCE_NUM_THREADS": threads,
    }


class OpenVinoGraph:
    """One compiled model and one infer request; outputs are copied out of its buffers."""

    def __init__(self, path: Path, config: RuntimeConfig) -> None:
        started = time.monotonic()
        precision = resolve(config.precision, config.device)
        threads = config.threads or available_cores()
        cache = cache_dir_for(path, config)
        properties = compile_properties(precision, threads)
        if cache is not None:
            properties["CACHE_DIR"] = str(cache)
        # Compiling from the path lets a cache hit skip reading and converting the ONNX file.
        self._compiled = core().compile_model(str(path), config.device, properties)
        self._request = self._compiled.create_infer_request()
        self.precision = precision
        self.description = f"openvino {precision.value}"
        self.load_seconds = time.monotonic() - started
        log.debug("%s: %s, %d threads, loaded in %.1f s", path.name, self.description,
                  threads, self.load_seconds)

    def run(self, inputs: Sequence[Float]) -> list[Float]:
        self._request.infer([np.ascontiguousarray(x, dtype=np.float32) for x in inputs])
        return [np.array(self._request.get_output_tensor(i).data, dtype=np.float32)
                for i in range(len(self._compiled.outputs))]

