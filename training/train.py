"""Train the piano masks on HT-Demucs' own stems of rendered songs, against the true piano.

Resumable: `last.pt` in the run folder holds model, optimizer, step and random state, and is
rewritten every few minutes; running the same command again continues from it. `best.pt`
keeps the weights of the best held-out score (the held-out soundfont; the benchmark's clips
are other songs): the score peaks early, so the last step is not the best one.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from separation.htdemucs import SOURCES
from separation.piano import HOP, N_FFT
from training.model import PianoMaskNet, parameter_count
from training.songs import STEMS
from training.teacher import TRAINING, VALID, pairs

Rng = np.random.Generator
PIANO_INDEX = STEMS.index("piano")
OTHER_INDEX = SOURCES.index("other")
BEST = "best.pt"  # the weights of the best held-out score so far: what gets exported


@dataclass(frozen=True, slots=True)
class Config:
    steps: int = 3000
    batch: int = 8
    crop_frames: int = 96  # ~1.1 s: many cheap steps learn faster on a CPU than few big ones
    lr: float = 1e-3
    hidden: int = 256
    seed: int = 5
    threads: int = 2
    device: str = "cpu"  # "cuda" on a machine that has one: same steps, same checkpoints
    minutes: float | None = None  # wall-clock cap for this invocation
    checkpoint_seconds: float = 180.0
    validate_every: int = 100
    init: str | None = None  # a new run starts from these weights: a checkpoint or a v1 .onnx
    splits: tuple[str, ...] = tuple(recipe.split for recipe in TRAINING)  # training folders


def spectrogram(x: Tensor) -> Tensor:
    """[..., n] -> complex [..., BINS, frames], scaled exactly like `separation.dsp.stft`."""
    lead, n = x.shape[:-1], x.shape[-1]
    window = torch.hann_window(N_FFT, periodic=True, device=x.device)
    z = torch.stft(
        x.reshape(-1, n),
        N_FFT,
        HOP,
        window=window,
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )
    return (z / math.sqrt(N_FFT)).reshape(*lead, *z.shape[-2:])


def inverse(z: Tensor, length: int) -> Tensor:
    lead = z.shape[:-2]
    window = torch.hann_window(N_FFT, periodic=True, device=z.device)
    x = torch.istft(
        z.reshape(-1, *z.shape[-2:]) * math.sqrt(N_FFT),
        N_FFT,
        HOP,
        window=window,
        center=True,
        length=length,
    )
    return x.reshape(*lead, length)


class Crops:
    """Random training crops of what the runtime sees: HT-Demucs' 4 stems and the true piano."""

    def __init__(self, files: list[tuple[Path, Path]], crop_samples: int, rng: Rng) -> None:
        self.songs = [np.load(song, mmap_mode="r") for song, _ in files]
        self.teacher = [np.load(teacher, mmap_mode="r") for _, teacher in files]
        self.crop = crop_samples
        self.rng = rng

    def batch(self, size: int) -> tuple[Tensor, Tensor]:
        """Teacher stems [B, 4, 2, n] and piano [B, 2, n], one level and channel order each.

        HT-Demucs normalises its input, so a gain on the mix is (nearly) the same gain on
        its stems: levels can be drawn here without another pass of the network.
        """
        stems, pianos = [], []
        for _ in range(size):
            i = int(self.rng.integers(len(self.songs)))
            start = int(self.rng.integers(0, self.songs[i].shape[-1] - self.crop + 1))
            window = slice(start, start + self.crop)
            four = np.array(self.teacher[i][:, :, window], dtype=np.float32)
            piano = np.array(self.songs[i][PIANO_INDEX, :, window], dtype=np.float32)
            if self.rng.random() < 0.5:
                four, piano = four[:, ::-1], piano[::-1]
            level = np.float32(10 ** (self.rng.uniform(-9.0, 6.0) / 20))
            stems.append(four * level)
            pianos.append(piano * level)
        return torch.from_numpy(np.stack(stems)), torch.from_numpy(np.stack(pianos))


def piano_of(model: PianoMaskNet, stems: Tensor) -> tuple[Tensor, Tensor]:
    """Teacher stems [B, S, 2, n] -> (piano STFT [B, 2, F, T], masks [B, S, 2, F, T])."""
    z = spectrogram(stems)
    batch, sources = z.shape[:2]
    masks = model(z.abs().reshape(batch, 2 * sources, *z.shape[-2:])).reshape(z.shape)
    return (masks * z).sum(dim=1), masks


def sdr_loss(estimate: Tensor, piano: Tensor, mix: Tensor) -> Tensor:
    """Negative SDR in dB of each crop [B, 2, n], averaged: what the benchmark scores.

    Each crop weighs the same whatever its level. A floor at -30 dB of the mix's energy keeps
    crops without piano finite: there it asks the estimate to stay 30 dB under the mix.
    """
    signal = piano.square().sum(dim=(-2, -1))
    error = (piano - estimate).square().sum(dim=(-2, -1))
    floor = 1e-3 * mix.square().sum(dim=(-2, -1)) + 1e-8
    loss: Tensor = (10 * torch.log10((error + floor) / (signal + floor))).mean()
    return loss


def loss_of(model: PianoMaskNet, stems: Tensor, piano: Tensor) -> Tensor:
    """The SDR loss of the piano the masks give back, in the time domain (phases count).

    A compressed-spectrum L1 (the loss of v1 and of the first v2 run) fit the training songs
    0.15 dB worse in SDR over the same 250 steps from the same weights (2026-12-01).
    """
    estimate, _ = piano_of(model, stems)
    return sdr_loss(inverse(estimate, piano.shape[-1]), piano, stems.sum(dim=1))


def global_sdr(reference: Tensor, estimate: Tensor) -> float:
    signal = float((reference.double() ** 2).sum())
    noise = float(((reference.double() - estimate.double()) ** 2).sum())
    return 10 * math.log10((signal + 1e-9) / (noise + 1e-9))


@torch.no_grad()
def validate(
    model: PianoMaskNet, files: list[tuple[Path, Path]], device: str = "cpu"
) -> dict[str, float]:
    """Mean piano SDR on the held-out-soundfont songs, and the other-as-piano baseline.

    Songs without piano are left out: they have no signal to measure.
    """
    model.eval()
    ours, baseline = [], []
    for song_file, teacher_file in files:
        piano = torch.from_numpy(np.load(song_file)[PIANO_INDEX]).to(device)
        four = torch.from_numpy(np.load(teacher_file).astype(np.float32)).to(device)
        if float(piano.abs().max()) == 0.0:
            continue
        estimate, _ = piano_of(model, four[None])
        ours.append(global_sdr(piano, inverse(estimate[0], piano.shape[-1])))
        baseline.append(global_sdr(piano, four[OTHER_INDEX]))
    model.train()
    return {"piano_sdr": float(np.mean(ours)), "other_as_piano_sdr": float(np.mean(baseline))}


def initial_weights(path: Path, model: PianoMaskNet) -> dict[str, Tensor]:
    """Weights to start from: a checkpoint as is, or the one-stem v1 model widened to S stems.

    v1 masked `other` alone; widened, its weights read and mask the `other` slot, the other
    stems start unread with masks low, so training starts near v1's answer, not at noise.
    """
    if path.suffix != ".onnx":
        state: dict[str, Tensor] = torch.load(path, weights_only=False)["model"]
        return state
    import onnx
    from onnx import numpy_helper

    v1 = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy())
          for i in onnx.load(str(path)).graph.initializer}
    state = model.state_dict()
    slot = slice(2 * OTHER_INDEX, 2 * OTHER_INDEX + 2)
    sources = len(SOURCES)
    for name, value in state.items():
        old = v1[name]
        if name in ("shift", "scale"):
            state[name] = old.repeat(1, sources, 1, 1)
        elif name == "stem.weight":
            state[name] = torch.zeros_like(value)
            state[name][:, slot] = old
        elif name == "head.weight":
            state[name] = torch.zeros_like(value)
            state[name][slot] = old
        elif name == "head.bias":
            # nearly closed, yet trainable: at -8 (0.03 %) the sigmoid's slope is 3e-4 and the
            # run of 2026-12-01 never opened these masks; at -3 it is 0.045 (4.7 % let through)
            state[name] = torch.full_like(value, -3.0)
            state[name][slot] = old
        else:
            state[name] = old
    return state


def best_score(run: Path) -> float:
    """The held-out score of the run's best.pt, read from the file itself: it may be newer
    than last.pt when a run was killed between the two saves."""
    path = run / BEST
    if not path.is_file():
        return -math.inf
    return float(torch.load(path, weights_only=False, map_location="cpu")["piano_sdr"])


def learning_rate(config: Config, step: int) -> float:
    """Linear warm-up over 50 steps, then a cosine down to 5 %."""
    return warm_cosine(config.lr, config.steps, step, warmup=50)


def warm_cosine(peak: float, steps: int, step: int, warmup: int) -> float:
    """Linear warm-up over `warmup` steps, then a cosine from `peak` down to 5 % at `steps`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def optimize(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss: Tensor) -> float:
    """One step down `loss`'s gradient, clipped to norm 5; the loss as a number."""
    optimizer.zero_grad()
    loss.backward()  # type: ignore[no-untyped-call]
    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    optimizer.step()
    return float(loss.detach())


def save(path: Path, state: dict[str, object]) -> None:
    part = path.with_suffix(".part")
    torch.save(state, part)
    os.replace(part, path)


def log(run: Path, line: str) -> None:
    stamped = f"{time.strftime('%H:%M:%S')} {line}"
    print(stamped, flush=True)
    with (run / "train.log").open("a") as f:
        f.write(stamped + "\n")


def train(data: Path, run: Path, config: Config) -> Path:
    """Train (or continue) until `config.steps`; returns the checkpoint path."""
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    run.mkdir(parents=True, exist_ok=True)
    checkpoint = run / "last.pt"
    model = PianoMaskNet(config.hidden, sources=len(SOURCES)).to(config.device)
    optimizer = torch.optim.Adam(model.parameters(), config.lr)
    rng = np.random.default_rng(config.seed)
    step, best = 0, best_score(run)
    if checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=False, map_location=config.device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"].cpu())
        step = int(state["step"])
        log(run, f"resumed at step {step}")
    elif config.init:
        model.load_state_dict(initial_weights(Path(config.init), model))
        log(run, f"starting from the weights of {config.init}, {asdict(config)}")
    else:
        log(run, f"new model, {parameter_count(model)} parameters, {asdict(config)}")
    files = [pair for split in config.splits for pair in pairs(data, split)]
    crops = Crops(files, (config.crop_frames - 1) * HOP, rng)
    log(run, f"{len(crops.songs)} training songs")
    valid = pairs(data, VALID.split)
    started = last_save = time.monotonic()
    running: list[float] = []

    def snapshot() -> None:
        save(
            checkpoint,
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "step": step,
                "config": asdict(config),
            },
        )

    try:
        while step < config.steps:
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, step)
            stems, piano = crops.batch(config.batch)
            loss = loss_of(model, stems.to(config.device), piano.to(config.device))
            running.append(optimize(model, optimizer, loss))
            step += 1
            if step % 20 == 0:
                log(
                    run,
                    f"step {step} loss {np.mean(running):.5f} lr {learning_rate(config, step):.2e}",
                )
                running.clear()
            if step % config.validate_every == 0 and valid:
                scores = validate(model, valid, config.device)
                log(run, f"step {step} held-out {scores}")
                if scores["piano_sdr"] > best:
                    best = scores["piano_sdr"]
                    save(run / BEST, {"model": model.state_dict(), "step": step,
                                      "config": asdict(config), "piano_sdr": best})
            out_of_time = (
                config.minutes is not None and time.monotonic() - started > 60 * config.minutes
            )
            if time.monotonic() - last_save > config.checkpoint_seconds or out_of_time:
                snapshot()
                last_save = time.monotonic()
            if out_of_time:
                log(run, f"stopping at step {step}: {config.minutes} minutes spent")
                return checkpoint
    except KeyboardInterrupt:  # Ctrl-C keeps the steps since the last checkpoint
        snapshot()
        log(run, f"interrupted at step {step}; run again to continue")
        raise
    snapshot()
    log(run, f"done at step {step}")
    return checkpoint
