"""Which inference runtime runs the networks, at which precision: one Protocol, one factory.

OpenVINO is the default: on this project's CPUs it runs HT-Demucs about 1.4x (f32) to 2.3x
(bf16) faster than ONNX Runtime. ONNX Runtime stays as the fallback and as a choice.
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from separation.apply import DEFAULT_OVERLAP
from separation.dsp import Float
from separation.env import SettingError, env_choice, env_float

log = logging.getLogger("stembot.engine")

MAX_OVERLAP = 0.5  # beyond half, each sample is computed three times or more


class RuntimeName(enum.StrEnum):
    OPENVINO = "openvino"
    ONNXRUNTIME = "onnxruntime"


class Precision(enum.StrEnum):
    """`auto`: bf16 where the CPU computes it natively, else f32."""

    AUTO = "auto"
    BF16 = "bf16"
    F32 = "f32"


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """How a process runs its networks; plain data so it pickles to worker processes.

    `overlap` is the share of each 7.8 s chunk that its neighbours also cover (cross-faded).
    """

    runtime: RuntimeName = RuntimeName.OPENVINO
    precision: Precision = Precision.AUTO
    threads: int | None = None
    cache_dir: Path | None = None  # OpenVINO's compiled-model cache; None: next to the model
    device: str = "CPU"  # OpenVINO device; a missing one makes the engine fall back
    overlap: float = DEFAULT_OVERLAP

    @classmethod
    def from_env(cls) -> RuntimeConfig:
        """STEMBOT_RUNTIME, STEMBOT_PRECISION, STEMBOT_OPENVINO_DEVICE, STEMBOT_OVERLAP;
        SettingError if invalid."""
        return cls(
            runtime=env_choice(RuntimeName, "STEMBOT_RUNTIME", RuntimeName.OPENVINO),
            precision=env_choice(Precision, "STEMBOT_PRECISION", Precision.AUTO),
            device=os.environ.get("STEMBOT_OPENVINO_DEVICE") or "CPU",
            overlap=checked_overlap(env_float("STEMBOT_OVERLAP", DEFAULT_OVERLAP),
                                    "STEMBOT_OVERLAP"),
        )

    def with_threads(self, threads: int | None) -> RuntimeConfig:
        return replace(self, threads=threads)

    def with_overlap(self, overlap: float | None) -> RuntimeConfig:
        """This config with another overlap (None keeps it); SettingError if out of range."""
        if overlap is None:
            return self
        return replace(self, overlap=checked_overlap(overlap, "--overlap"))


def checked_overlap(overlap: float, name: str) -> float:
    """An overlap the chunking can use: 0 (chunks side by side) to MAX_OVERLAP."""
    if not 0.0 <= overlap <= MAX_OVERLAP:
        raise SettingError(f"{name} must be between 0 and {MAX_OVERLAP:g}, not {overlap:g}")
    return overlap


class Graph(Protocol):
    """A loaded network: positional float32 inputs in, its outputs out (fresh arrays)."""

    @property
    def description(self) -> str:
        """Runtime and precision in a few words, e.g. `openvino bf16`."""
        ...

    def run(self, inputs: Sequence[Float]) -> list[Float]: ...


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def open_graph(path: Path, config: RuntimeConfig, ort_parts: Path | None = None) -> Graph:
    """The network in `path` on the configured runtime; ONNX Runtime if OpenVINO fails.

    `ort_parts`, when given, is the same network cut into parts (graph_split): ONNX Runtime
    runs those to bound its memory; OpenVINO always reads the whole graph.
    """
    if config.runtime is RuntimeName.OPENVINO:
        try:
            from separation.ov_graph import OpenVinoGraph

            return OpenVinoGraph(path, config)
        except Exception as error:  # any failure to load or compile: the other runtime works
            log.warning("%s: OpenVINO failed (%s); using ONNX Runtime",
                        path.name, _one_line(error))
    from separation.ort_graph import OrtGraph, OrtPartsGraph

    if ort_parts is not None:
        return OrtPartsGraph(ort_parts, config.threads)
    return OrtGraph(path, config.threads)


def onnx_metadata(path: Path) -> dict[str, str]:
    """The model's metadata_props (the piano model records its STFT and reach there)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {prop.key: prop.value for prop in model.metadata_props}


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return (text[:200] + "…") if len(text) > 200 else (text or type(error).__name__)
