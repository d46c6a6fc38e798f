"""The separation engine: HT-Demucs v4 on OpenVINO or ONNX Runtime, stem presets, audio I/O.

Names load on first use (PEP 562), so that importing `separation.presets` for the stem
presets (the wire protocol's method numbers) does not load numpy, PyAV or an inference runtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from separation.audio import Limits, OutputFormat, decode, encode, parse_format
    from separation.engine import Separator, Stems
    from separation.errors import SeparationError
    from separation.presets import StemPreset

_HOMES = {
    "Limits": "audio", "OutputFormat": "audio", "decode": "audio", "encode": "audio",
    "parse_format": "audio", "Separator": "engine", "Stems": "engine",
    "SeparationError": "errors", "StemPreset": "presets",
}

__all__ = [
    "Limits",
    "OutputFormat",
    "SeparationError",
    "Separator",
    "StemPreset",
    "Stems",
    "decode",
    "encode",
    "parse_format",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'separation' has no attribute {name!r}")
    return getattr(importlib.import_module(f"separation.{home}"), name)
