"""The separation engine: HT-Demucs v4 on ONNX Runtime, stem presets, audio I/O."""

from separation.audio import Limits, OutputFormat, decode, encode, parse_format
from separation.engine import Separator, Stems
from separation.errors import SeparationError
from separation.presets import TONES, StemPreset, Tone

__all__ = [
    "TONES",
    "Limits",
    "OutputFormat",
    "SeparationError",
    "Separator",
    "StemPreset",
    "Stems",
    "Tone",
    "decode",
    "encode",
    "parse_format",
]
