"""Train the piano mask on random crops of `other` = piano + rest, with remixing and levels.

Resumable: `last.pt` in the run folder holds model, optimizer, step and random state, and is
rewritten every few minutes; running the same command again continues from it.
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

from separation.piano import HOP, N_FFT
from training.data import examples
from training.model import PianoMaskNet, parameter_count

Rng = np.random.Generator


@dataclass(frozen=True, slots=True)
class Config:
    steps: int = 3000
    batch: int = 8
    crop_frames: int = 96  # ~1.1 s: many cheap steps learn faster on a CPU than few big ones
    lr: float = 1e-3
    hidden: int = 256
    seed: int = 5
    threads: int = 2
    minutes: float | None = None  # wall-clock cap for this invocation
    checkpoint_seconds: float = 180.0
    validate_every: int = 100
    init: str | None = None  # a new run starts from this checkpoint's weights (fine-tuning)


def spectrogram(x: Tensor) -> Tensor:
    """[..., n] -> complex [..., BINS, frames], scaled exactly like `separation.dsp.stft`."""
    lead, n = x.shape[:-1], x.shape[-1]
    window = torch.hann_window(N_FFT, periodic=True)
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
    window = torch.hann_window(N_FFT, periodic=True)
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
    """Random training crops: a piano and a rest (often from different songs), random levels."""

    def __init__(self, files: list[Path], crop_samples: int, rng: Rng) -> None:
        self.examples = [np.load(f, mmap_mode="r") for f in files]
        self.crop = crop_samples
        self.rng = rng

    def _slice(self, index: int, stem: int) -> np.ndarray:
        audio = self.examples[index][stem]
        start = int(self.rng.integers(0, audio.shape[-1] - self.crop + 1))
        out = np.array(audio[:, start : start + self.crop], dtype=np.float32)
        return out[::-1].copy() if self.rng.random() < 0.5 else out

    def _db(self, low: float, high: float) -> float:
        return float(10 ** (self.rng.uniform(low, high) / 20))

    def batch(self, size: int) -> tuple[Tensor, Tensor]:
        """piano [B, 2, n] and rest [B, 2, n]."""
        pianos, rests = [], []
        for _ in range(size):
            i = int(self.rng.integers(len(self.examples)))
            j = int(self.rng.integers(len(self.examples))) if self.rng.random() < 0.5 else i
            level = self._db(-12.0, 6.0)
            pianos.append(self._slice(i, 0) * level * self._db(-9.0, 6.0))
            rests.append(self._slice(j, 1) * level * self._db(-9.0, 6.0))
        return torch.from_numpy(np.stack(pianos)), torch.from_numpy(np.stack(rests))


def loss_of(model: PianoMaskNet, piano: Tensor, rest: Tensor) -> Tensor:
    """Mask error against the ideal ratio mask, plus L1 on compressed piano and rest magnitudes.

    L1 on raw magnitudes alone lets the few loudest bins decide every gradient, and the
    net settles on an all-zero mask; the ratio-mask term gives every audible bin a say.
    """
    piano_z, rest_z = spectrogram(piano), spectrogram(rest)
    mix = (piano_z + rest_z).abs()  # the STFT is linear: no third transform needed
    mask: Tensor = model(mix)
    target_piano, target_rest = piano_z.abs(), rest_z.abs()
    ideal = target_piano / (target_piano + target_rest + 1e-8)
    weight = mix.sqrt()
    ratio_term = (weight * (mask - ideal) ** 2).sum() / weight.sum()
    power, floor = 0.5, 1e-8  # the floor keeps the root's gradient finite in digital silence
    piano_term = ((mask * mix + floor) ** power - (target_piano + floor) ** power).abs().mean()
    rest_term = (((1 - mask) * mix + floor) ** power - (target_rest + floor) ** power).abs().mean()
    loss: Tensor = ratio_term + piano_term + rest_term
    return loss


def global_sdr(reference: Tensor, estimate: Tensor) -> float:
    signal = float((reference.double() ** 2).sum())
    noise = float(((reference.double() - estimate.double()) ** 2).sum())
    return 10 * math.log10((signal + 1e-9) / (noise + 1e-9))


@torch.no_grad()
def validate(model: PianoMaskNet, files: list[Path]) -> dict[str, float]:
    """Mean piano SDR on the held-out-soundfont clips, and the other-as-piano baseline.

    Clips without piano or without anything else are left out: the first has no signal to
    measure, the second gives the baseline a perfect score.
    """
    model.eval()
    ours, baseline = [], []
    for f in files:
        stems = torch.from_numpy(np.load(f))
        piano, other = stems[0], stems[0] + stems[1]
        if float(stems[0].abs().max()) == 0.0 or float(stems[1].abs().max()) == 0.0:
            continue
        z = spectrogram(other)
        estimate = inverse(model(z.abs()[None])[0] * z, other.shape[-1])
        ours.append(global_sdr(piano, estimate))
        baseline.append(global_sdr(piano, other))
    model.train()
    return {"piano_sdr": float(np.mean(ours)), "other_as_piano_sdr": float(np.mean(baseline))}


def learning_rate(config: Config, step: int) -> float:
    """Linear warm-up over 50 steps, then a cosine down to 5 %."""
    if step < 50:
        return config.lr * (step + 1) / 50
    progress = min(1.0, (step - 50) / max(1, config.steps - 50))
    return config.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


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
    model = PianoMaskNet(config.hidden)
    optimizer = torch.optim.Adam(model.parameters(), config.lr)
    rng = np.random.default_rng(config.seed)
    step = 0
    if checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        step = int(state["step"])
        log(run, f"resumed at step {step}")
    elif config.init:
        model.load_state_dict(torch.load(config.init, weights_only=False)["model"])
        log(run, f"fine-tuning the weights of {config.init}, {asdict(config)}")
    else:
        log(run, f"new model, {parameter_count(model)} parameters, {asdict(config)}")
    crops = Crops(examples(data, "train"), (config.crop_frames - 1) * HOP, rng)
    valid = examples(data, "valid")
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
            piano, rest = crops.batch(config.batch)
            loss = loss_of(model, piano, rest)
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            step += 1
            running.append(float(loss.detach()))
            if step % 20 == 0:
                log(
                    run,
                    f"step {step} loss {np.mean(running):.5f} lr {learning_rate(config, step):.2e}",
                )
                running.clear()
            if step % config.validate_every == 0 and valid:
                log(run, f"step {step} held-out {validate(model, valid)}")
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
