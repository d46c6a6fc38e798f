"""Export a trained checkpoint to ONNX for the runtime, and check it against PyTorch.

The graph maps the magnitudes of the 4-stem network's stems [1, 2·S, BINS, frames] to masks
of the same shape; the STFT stays in numpy at run time. Metadata carries the STFT settings,
the receptive field (which `separation.piano` reads to size its streaming context) and the
stems the masks apply to, in order.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from separation.htdemucs import SOURCES
from separation.piano import BINS, HOP, N_FFT
from training.model import RECEPTIVE_FRAMES, PianoMaskNet, parameter_count

MAX_PARAMETERS = 20_000_000
MAX_BYTES = 40_000_000


def load(checkpoint: Path) -> tuple[PianoMaskNet, int]:
    """The model of a checkpoint and the step it reached."""
    state = torch.load(checkpoint, weights_only=False)
    model = PianoMaskNet(int(state["config"]["hidden"]), sources=len(SOURCES))
    model.load_state_dict(state["model"])
    return model.eval(), int(state["step"])


def export(checkpoint: Path, out: Path) -> Path:
    """Write `out` atomically once the ONNX output matches PyTorch's."""
    model, step = load(checkpoint)
    if parameter_count(model) > MAX_PARAMETERS:
        raise ValueError(f"{parameter_count(model)} parameters: over the {MAX_PARAMETERS} limit")
    channels = 2 * len(SOURCES)
    example = torch.rand(1, channels, BINS, 200)
    part = out.with_name(f".{out.name}.part")
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model,
        (example,),
        str(part),
        opset_version=17,
        dynamo=False,
        input_names=["magnitude"],
        output_names=["mask"],
        dynamic_axes={"magnitude": {3: "frames"}, "mask": {3: "frames"}},
    )
    graph = onnx.load(str(part))
    meta = {
        "n_fft": N_FFT,
        "hop": HOP,
        "receptive_frames": RECEPTIVE_FRAMES,
        "sample_rate": 44_100,
        "training_steps": step,
        "parameters": parameter_count(model),
        "sources": ",".join(SOURCES),
    }
    onnx.helper.set_model_props(graph, {k: str(v) for k, v in meta.items()})
    onnx.save(graph, str(part))
    _check(model, part)
    if part.stat().st_size > MAX_BYTES:
        raise ValueError(f"{part.stat().st_size} bytes: over the {MAX_BYTES} limit")
    os.replace(part, out)
    print(
        f"exported step {step}, {parameter_count(model)} parameters, "
        f"{out.stat().st_size / 1e6:.1f} MB -> {out}"
    )
    return out


def _check(model: PianoMaskNet, path: Path) -> None:
    """Same mask from ONNX Runtime as from PyTorch, on a length not seen at export."""
    magnitude = torch.rand(1, 2 * len(SOURCES), BINS, 333) * 0.3
    with torch.no_grad():
        expected = model(magnitude).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"magnitude": magnitude.numpy()})
    error = float(np.abs(got - expected).max())
    if error > 1e-4:
        raise ValueError(f"ONNX and PyTorch masks differ by {error}")
