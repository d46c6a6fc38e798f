"""Piano v3: a light head on HT-Demucs' own frequency-decoder activations.

The head reads the 48 activations of each of HT-Demucs' 512 frequency rows (training/
features.py) and each stem's share of the magnitude in that row's 4 bins, and predicts a
mask in [0, 1] per stem and bin on HT-Demucs' own STFT grid (n_fft 4096, hop 1024): the
piano is Σ_k mask_k · spec(stem_k), inverted; each stem keeps the rest, as in v2.

    python -m training.head train|validate [--run training/runs/piano3] [--minutes 30]

Resumable: `last.pt` (model, optimizer, step, random state) is rewritten every few
minutes and training continues from it; `best.pt` keeps the best held-out weights.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from separation import dsp
from separation.dsp import Complex, Float
from separation.htdemucs import SEGMENT, SOURCES
from separation.model_files import REPO_ROOT
from training import features, teacher
from training.songs import STEMS
from training.train import global_sdr, log, optimize, save, warm_cosine

RUN_DIR = REPO_ROOT / "training" / "runs" / "piano3"
BEST = "best.pt"
PIANO_INDEX = STEMS.index("piano")
OTHER_INDEX = SOURCES.index("other")
SUB = 4  # STFT bins per feature row
SHARES = len(SOURCES) * SUB
LAST_FRAME = SEGMENT // 1024 - 4  # crops end here, so load_crop's window fits in the song


NARROW = ((1, 1), (1, 2), (1, 4))
WIDE = ((1, 1), (2, 2), (4, 4), (8, 8), (16, 16))


class PianoHead(nn.Module):
    """[B, 48, 512, T] activations + [B, 16, 512, T] shares -> [B, 4, 2048, T] masks."""

    def __init__(self, hidden: int = 32, activations: bool = True, wide: bool = False) -> None:
        super().__init__()
        self.activations = activations  # False: the ablation that reads the shares alone
        self.inp = nn.Conv2d(features.CHANNELS + SHARES, hidden, 1)
        # (rows, frames) dilations: ±7 frames and ±3 rows (±12 bins, ±130 Hz), or `wide`:
        # ±31 of both (±1.3 kHz, ±0.7 s), enough to see a note's harmonics and decay
        dilations = WIDE if wide else NARROW
        self.blocks = nn.ModuleList(
            nn.Conv2d(hidden, hidden, 3, padding=d, dilation=d) for d in dilations
        )
        self.out = nn.Conv2d(hidden, SHARES, 1)
        bias = torch.full((len(SOURCES), SUB), -3.0)  # start: a little of `other`, less of
        bias[OTHER_INDEX] = -1.0  # the other stems
        self.out.bias = nn.Parameter(bias.reshape(-1))

    def forward(self, activations: Tensor, shares: Tensor) -> Tensor:
        masks: Tensor = torch.sigmoid(self.logits(activations, shares))
        return masks

    def logits(self, activations: Tensor, shares: Tensor) -> Tensor:
        """The masks before the sigmoid, [B, 4 stems, 2048 bins, T]."""
        if not self.activations:
            activations = torch.zeros_like(activations)
        x = nn.functional.gelu(self.inp(torch.cat([asinh(4 * activations), shares], 1)))
        for block in self.blocks:
            x = x + nn.functional.gelu(block(x))
        out: Tensor = self.out(x)  # [B, stems·sub, rows, T]
        b, _, rows, frames = out.shape
        out = out.reshape(b, len(SOURCES), SUB, rows, frames).permute(0, 1, 3, 2, 4)
        return out.reshape(b, len(SOURCES), rows * SUB, frames)


def asinh(x: Tensor) -> Tensor:
    """torch.asinh in operators the ONNX exporter knows (it has no asinh at opset 17)."""
    a = x.abs()
    out: Tensor = torch.sign(x) * torch.log(a + torch.sqrt(a * a + 1))
    return out


def shares_of(z: Complex) -> Float:
    """[4 stems, 2, 2048, T] complex -> [16, 512, T]: each stem's share of each bin's magnitude."""
    magnitude = np.abs(z).sum(axis=1)  # [4, 2048, T]
    share = magnitude / (magnitude.sum(axis=0, keepdims=True) + 1e-6)
    stems, bins, frames = share.shape
    out: Float = share.reshape(stems, bins // SUB, SUB, frames).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(out.reshape(stems * SUB, bins // SUB, frames), dtype=np.float32)


@dataclass(frozen=True, slots=True)
class Example:
    activations: Tensor  # [48, 512, T]
    shares: Tensor  # [16, 512, T]
    stems: Tensor  # [4, 2, 2048, T] complex
    piano: Tensor  # [2, 2048, T] complex


def load(root: Path, recipe_split: str, index: int) -> Example:
    """One song's cached activations, its stems' spectra and the true piano's spectrum."""
    recipe = features.TRAIN3 if recipe_split == features.TRAIN3.split else features.VALID
    four = np.load(teacher.teacher_path(root, recipe, index)).astype(np.float32)
    song = np.load(teacher.song_path(root, recipe, index), mmap_mode="r")
    z = dsp.spec(four)
    return Example(
        torch.from_numpy(np.load(features.feature_path(root, recipe, index)).astype(np.float32)),
        torch.from_numpy(shares_of(z)),
        torch.from_numpy(z),
        torch.from_numpy(dsp.spec(np.asarray(song[PIANO_INDEX], dtype=np.float32))),
    )


MARGIN = 4  # frames: spec() of a window this far inside the song equals the song's own frames


def load_crop(root: Path, index: int, start: int, stop: int) -> Example:
    """Frames [start, stop) of a training song, reading and transforming only those.

    Frame t of `dsp.spec` reads samples [t·1024 - 1536, t·1024 + 2560), so the spectrum of
    the samples from (start - MARGIN)·1024 holds frames start..stop exactly at MARGIN.
    """
    recipe, hop = features.TRAIN3, dsp.HOP
    lo, hi = (start - MARGIN) * hop, (stop + MARGIN) * hop
    four = np.load(teacher.teacher_path(root, recipe, index), mmap_mode="r")
    song = np.load(teacher.song_path(root, recipe, index), mmap_mode="r")
    rows = np.load(features.feature_path(root, recipe, index), mmap_mode="r")
    frames = slice(MARGIN, MARGIN + stop - start)
    z = dsp.spec(np.asarray(four[..., lo:hi], dtype=np.float32))[..., frames]
    piano = dsp.spec(np.asarray(song[PIANO_INDEX, :, lo:hi], dtype=np.float32))[..., frames]
    return Example(
        torch.from_numpy(np.asarray(rows[..., start:stop], dtype=np.float32)),
        torch.from_numpy(shares_of(z)),
        torch.from_numpy(np.ascontiguousarray(z)),
        torch.from_numpy(np.ascontiguousarray(piano)),
    )


def estimate(model: PianoHead, example: Example, start: int, stop: int) -> Tensor:
    """The piano's spectrum [2, 2048, stop - start] from the masks on the stems' spectra."""
    return apply(torch.sigmoid(logits_of(model, example, start, stop)), example, start, stop)


def logits_of(model: PianoHead, example: Example, start: int, stop: int) -> Tensor:
    logits: Tensor = model.logits(example.activations[None, :, :, start:stop],
                                  example.shares[None, :, :, start:stop])[0]
    return logits


def apply(masks: Tensor, example: Example, start: int, stop: int) -> Tensor:
    piano: Tensor = (masks[:, None] * example.stems[..., start:stop]).sum(dim=0)
    return piano


def mask_loss(logits: Tensor, stems: Tensor, piano: Tensor) -> Tensor:
    """Cross-entropy of each stem's mask against the piano's projection onto that stem.

    The target per bin is the gain in [0, 1] closest to the piano on that stem alone,
    Re(P·conj(Z))/|Z|² over both channels; bins weigh by |Z|^0.5, each crop the same. It
    keeps a gradient where the sigmoid has saturated: on the SDR loss alone the head shut
    every mask within 60 steps (run piano3a).
    """
    energy = stems.abs().square().sum(dim=1)  # [4, bins, T]
    target = ((piano[None] * stems.conj()).real.sum(dim=1) / (energy + 1e-9)).clamp(0.0, 1.0)
    weight = energy.pow(0.25)
    weight = weight / (weight.sum() + 1e-9)
    bce = nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (weight * bce).sum()


def sdr_loss(guess: Tensor, piano: Tensor, stems: Tensor) -> Tensor:
    """Negative SDR in dB on the spectra, floored at -30 dB of the mix (crops without piano)."""
    error = (piano - guess).abs().square().sum()
    floor = 1e-3 * stems.sum(dim=0).abs().square().sum() + 1e-8
    return 10 * torch.log10((error + floor) / (piano.abs().square().sum() + floor))


@torch.no_grad()
def validate(model: PianoHead, examples: list[tuple[Example, Tensor]]) -> float:
    """Mean global piano SDR (time domain, after the inverse STFT) over songs with piano."""
    model.eval()
    scores = []
    for example, piano in examples:
        guess = estimate(model, example, 0, example.stems.shape[-1]).numpy()
        scores.append(global_sdr(piano, torch.from_numpy(dsp.ispec(guess, SEGMENT))))
    model.train()
    return float(np.mean(scores))


def examples(root: Path, split: str = "valid", count: int = 12) -> list[tuple[Example, Tensor]]:
    """Whole songs of a split that have piano, with their true piano."""
    recipe = features.TRAIN3 if split == features.TRAIN3.split else features.VALID
    out = []
    for index in range(count):
        song = np.load(teacher.song_path(root, recipe, index))
        if np.abs(song[PIANO_INDEX]).max() > 0:
            out.append((load(root, split, index),
                        torch.from_numpy(song[PIANO_INDEX].copy())))
    return out


@dataclass(frozen=True, slots=True)
class Config:
    steps: int = 600
    batch: int = 4
    crop_frames: int = 64  # of the 336 in a chunk: 1.5 s
    lr: float = 1e-3
    activations: bool = True  # False: the ablation without HT-Demucs' activations
    wide: bool = False  # PianoHead's wide context
    mask_weight: float = 5.0  # dB of SDR per unit of mask cross-entropy
    hidden: int = 32
    seed: int = 3
    threads: int = 2
    minutes: float | None = None
    checkpoint_seconds: float = 120.0
    validate_every: int = 50


def train(root: Path, run: Path, config: Config) -> None:
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    run.mkdir(parents=True, exist_ok=True)
    checkpoint = run / "last.pt"
    model = PianoHead(config.hidden, config.activations, config.wide)
    optimizer = torch.optim.Adam(model.parameters(), config.lr)
    rng = np.random.default_rng(config.seed)
    step, best = 0, -math.inf
    if (run / BEST).is_file():
        best = float(torch.load(run / BEST, weights_only=False)["piano_sdr"])
    if checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        step = int(state["step"])
        log(run, f"resumed at step {step}")
    else:
        count = sum(p.numel() for p in model.parameters())
        log(run, f"new head, {count} parameters, {asdict(config)}")
    valid = examples(root)
    started = last_save = time.monotonic()
    running: list[float] = []

    def snapshot() -> None:
        save(checkpoint, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                          "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                          "step": step, "config": asdict(config)})

    while step < config.steps:
        songs = [i for i in range(features.TRAIN3.count)
                 if features.feature_path(root, features.TRAIN3, i).is_file()]
        for group in optimizer.param_groups:
            group["lr"] = warm_cosine(config.lr, config.steps, step, warmup=20)
        losses = []
        for index in rng.choice(songs, config.batch):
            start = int(rng.integers(MARGIN, LAST_FRAME - config.crop_frames + 1))
            example = load_crop(root, int(index), start, start + config.crop_frames)
            logits = logits_of(model, example, 0, example.stems.shape[-1])
            guess = apply(torch.sigmoid(logits), example, 0, example.stems.shape[-1])
            losses.append(sdr_loss(guess, example.piano, example.stems)
                          + config.mask_weight * mask_loss(logits, example.stems, example.piano))
        running.append(optimize(model, optimizer, torch.stack(losses).mean()))
        step += 1
        if step % 10 == 0:
            log(run, f"step {step} loss {np.mean(running):.3f} ({len(songs)} songs)")
            running.clear()
        if step % config.validate_every == 0:
            score = validate(model, valid)
            log(run, f"step {step} held-out piano SDR {score:.3f} dB")
            if score > best:
                best = score
                save(run / BEST, {"model": model.state_dict(), "step": step,
                                  "config": asdict(config), "piano_sdr": best})
        spent = time.monotonic() - started
        out_of_time = config.minutes is not None and spent > 60 * config.minutes
        if time.monotonic() - last_save > config.checkpoint_seconds or out_of_time:
            snapshot()
            last_save = time.monotonic()
        if out_of_time:
            log(run, f"stopping at step {step}: {config.minutes} minutes spent")
            return
    snapshot()
    log(run, f"done at step {step}")


def load_head(checkpoint: Path) -> tuple[PianoHead, dict[str, Any]]:
    """The head of a checkpoint, in eval mode, and the checkpoint itself."""
    state: dict[str, Any] = torch.load(checkpoint, weights_only=False)
    config = state["config"]
    model = PianoHead(int(config["hidden"]), bool(config.get("activations", True)),
                      bool(config.get("wide", False)))
    model.load_state_dict(state["model"])
    return model.eval(), state


def export(checkpoint: Path, out: Path) -> Path:
    """The head as ONNX: (activations, shares) -> masks; checked against PyTorch."""
    import onnx
    import onnxruntime as ort

    model, state = load_head(checkpoint)
    frames = 336
    example = (torch.randn(1, features.CHANNELS, features.ROWS, frames) * 0.3,
               torch.rand(1, SHARES, features.ROWS, frames))
    part = out.with_name(f".{out.name}.part")
    torch.onnx.export(model, example, str(part), opset_version=17, dynamo=False,
                      input_names=["activations", "shares"], output_names=["masks"],
                      dynamic_axes={"activations": {3: "frames"}, "shares": {3: "frames"},
                                    "masks": {3: "frames"}})
    graph = onnx.load(str(part))
    meta = {"kind": "htdemucs-head", "feature": features.FEATURE, "sources": ",".join(SOURCES),
            "training_steps": state["step"]}
    onnx.helper.set_model_props(graph, {k: str(v) for k, v in meta.items()})
    onnx.save(graph, str(part))
    session = ort.InferenceSession(str(part), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"activations": example[0].numpy(), "shares": example[1].numpy()})
    with torch.no_grad():
        error = float(np.abs(got - model(*example).numpy()).max())
    if error > 1e-4:
        raise ValueError(f"ONNX and PyTorch masks differ by {error}")
    part.replace(out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.head", description=__doc__)
    parser.add_argument("step", choices=("train", "validate", "export"))
    parser.add_argument("--data", type=Path, default=features.DATA_ROOT)
    parser.add_argument("--run", type=Path, default=RUN_DIR)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--no-activations", action="store_true",
                        help="the ablation: the head reads the stems' shares alone")
    parser.add_argument("--wide", action="store_true", help="±31 rows and frames of context")
    parser.add_argument("--minutes", type=float, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--split", choices=("valid", "train3"), default="valid",
                        help="validate: the held-out songs, or the first 12 training songs")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "out" / "head.onnx")
    args = parser.parse_args(argv)
    if args.step == "train":
        train(args.data, args.run, Config(steps=args.steps, hidden=args.hidden,
                                          minutes=args.minutes, threads=args.threads,
                                          activations=not args.no_activations,
                                          wide=args.wide))
    elif args.step == "export":
        print(f"exported {export(args.run / BEST, args.out)}")
    else:
        torch.set_num_threads(args.threads)
        model, state = load_head(args.run / BEST)
        score = validate(model, examples(args.data, args.split))
        print(f"{args.split} piano SDR {score:.3f} dB (best.pt, step {state['step']})")


if __name__ == "__main__":
    main()
