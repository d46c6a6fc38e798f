"""Stems to MIDI: Basic Pitch's note model on this engine's runtime, decoded per stem.

The network is the ONNX file that Spotify's `basic-pitch` package ships (Apache-2.0; the
package is installed without its requirements, which pull TensorFlow: only its model file is
used). It hears 22.05 kHz mono in 2 s windows and gives, per 11.6 ms frame and piano key,
the probability that a note sounds (`note`) and that one starts (`onset`). Turning those into
notes is ours (separation/midi_decoding.py), and so is the file, at the song's tempo
(separation/midi_file.py).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from separation.audio import SAMPLE_RATE, decode
from separation.dsp import Float
from separation.errors import ModelNotInstalledError
from separation.midi_decoding import (
    HOP,
    KEYS,
    MODEL_RATE,
    Decoding,
    Posteriors,
    decode_notes,
    decoding_for,
)
from separation.midi_file import Note, write_midi
from separation.runtime import Graph, RuntimeConfig, open_graph

WINDOW = 43_844  # samples per model call: 2 s less one hop
WINDOW_FRAMES = 172  # frames per model call
EDGE = 15  # frames at each side of a window that are not kept (they hear its edge)
KEEP = WINDOW_FRAMES - 2 * EDGE
STEP = KEEP * HOP  # windows start every STEP samples: kept frames tile the song exactly
BATCH = 8  # windows per model call
PACKAGE = "basic_pitch"
MODEL_FILE = "saved_models/icassp_2022/nmp.onnx"
INSTALL_HINT = "pip install --no-deps basic-pitch==0.4.0"

Progress = Callable[[int, int], None]


def model_path() -> Path:
    """The ONNX file inside the installed basic-pitch package (its code is never imported)."""
    spec = importlib.util.find_spec(PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / MODEL_FILE
        if path.is_file():
            return path
    raise ModelNotInstalledError(
        f"MIDI: Basic Pitch's note model is not installed ({INSTALL_HINT})")


class Transcriber:
    """The note model, loaded once; stems in, notes or MIDI files out."""

    def __init__(self, config: RuntimeConfig | None = None) -> None:
        path = model_path()
        self._graph: Graph = open_graph(path, config or RuntimeConfig())
        self._order = _output_order(path)

    @property
    def description(self) -> str:
        return self._graph.description

    def posteriors(self, audio: Float, progress: Progress | None = None) -> Posteriors:
        """The model over a [2, n] (or [n]) 44.1 kHz stem, window by window."""
        signal = model_signal(audio)
        frames = len(signal) // HOP + 1
        windows = max(1, math.ceil(frames / KEEP))
        padded = np.zeros(EDGE * HOP + windows * STEP + WINDOW, dtype=np.float32)
        padded[EDGE * HOP: EDGE * HOP + len(signal)] = signal
        note = np.zeros((windows * KEEP, KEYS), dtype=np.float32)
        onset = np.zeros_like(note)
        for first in range(0, windows, BATCH):
            count = min(BATCH, windows - first)
            batch = np.zeros((BATCH, WINDOW, 1), dtype=np.float32)
            for k in range(count):
                start = (first + k) * STEP
                batch[k, :, 0] = padded[start: start + WINDOW]
            outputs = dict(zip(self._order, self._graph.run([batch]), strict=True))
            rows = slice(first * KEEP, (first + count) * KEEP)
            note[rows] = outputs["note"][:count, EDGE: EDGE + KEEP].reshape(-1, KEYS)
            onset[rows] = outputs["onset"][:count, EDGE: EDGE + KEEP].reshape(-1, KEYS)
            if progress is not None:
                progress(first + count, windows)
        return Posteriors(note[:frames], onset[:frames], _envelope(signal, frames))

    def notes(self, audio: Float, stem: str, bpm: float | None = None,
              progress: Progress | None = None, decoding: Decoding | None = None
              ) -> list[Note]:
        chosen = decoding or decoding_for(stem)
        if not np.any(audio):
            return []  # silence: no need to run the model
        return decode_notes(self.posteriors(audio, progress), chosen, bpm)

    def transcribe_file(self, source: Path, target: Path, stem: str, bpm: float | None = None,
                        progress: Progress | None = None) -> int:
        """`source` (a stem file) to a MIDI file at `target`; how many notes it holds."""
        decoding = decoding_for(stem)
        found = self.notes(decode(source), stem, bpm, progress, decoding)
        write_midi(target, found, bpm, decoding.program, stem)
        return len(found)


def model_signal(audio: Float) -> Float:
    """A [2, n] (or [n]) 44.1 kHz stem as the model hears it: mono at 22.05 kHz."""
    mono = audio.mean(axis=0) if audio.ndim == 2 else audio
    out: Float = resample_poly(mono.astype(np.float64), 1, SAMPLE_RATE // MODEL_RATE).astype(
        np.float32)
    return out


def envelope(signal: Float) -> Float:
    """The envelope `Posteriors` carries, of a model_signal."""
    return _envelope(signal, len(signal) // HOP + 1)


def _output_order(path: Path) -> list[str]:
    """`note`, `onset`, `contour` in the order the graph gives its outputs."""
    import onnx

    names = {"StatefulPartitionedCall:0": "contour", "StatefulPartitionedCall:1": "note",
             "StatefulPartitionedCall:2": "onset"}
    graph = onnx.load(str(path)).graph
    return [names[output.name] for output in graph.output]


def _envelope(signal: Float, frames: int) -> Float:
    """The signal's RMS over 11.6 ms, every 64 samples (2.9 ms): 4 values per frame."""
    step = HOP // 4
    count = frames * 4
    power = np.zeros(count * step + HOP, dtype=np.float64)
    n = min(len(signal), count * step)
    power[HOP // 2: HOP // 2 + n] = signal[:n].astype(np.float64) ** 2
    summed = np.concatenate([[0.0], np.cumsum(power)])
    starts = np.arange(count) * step
    out: Float = np.sqrt((summed[starts + HOP] - summed[starts]) / HOP).astype(np.float32)
    return out
