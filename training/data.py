"""The data recipe: arrangements rendered one instrument per file, effects, stems saved as .npy.

Example `i` of a split is a pure function of (seed, split, i), so the set is reproducible
and generation resumes where it stopped. Training examples hold [piano, rest] of `other`.
"""

from __future__ import annotations

import multiprocessing
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from separation import synth
from separation.audio import SAMPLE_RATE
from separation.dsp import Float
from separation.synth import Part
from training import augment, compose
from training.instruments import (
    HELD_OUT_SOUNDFONT,
    TRAIN_SOUNDFONT_WEIGHTS,
    TRAIN_SOUNDFONTS,
    soundfont_path,
)

Rng = np.random.Generator


@dataclass(frozen=True, slots=True)
class Recipe:
    """How many examples of what length; `held_out` renders with the evaluation soundfont."""

    split: str
    count: int
    seconds: float
    seed: int = 5
    held_out: bool = False
    corpus_share: float = 0.25
    effects: bool = True


TRAIN = Recipe("train", count=360, seconds=8.0)
VALID = Recipe("valid", count=16, seconds=8.0, held_out=True, effects=False)


def rng_for(recipe: Recipe, index: int) -> Rng:
    return np.random.default_rng([recipe.seed, zlib.crc32(recipe.split.encode()), index])


def pick_soundfont(rng: Rng, recipe: Recipe) -> Path:
    if recipe.held_out:
        return soundfont_path(HELD_OUT_SOUNDFONT)
    weights = np.asarray(TRAIN_SOUNDFONT_WEIGHTS)
    return soundfont_path(str(rng.choice(TRAIN_SOUNDFONTS, p=weights / weights.sum())))


def render_group(rng: Rng, recipe: Recipe, parts: list[Part], length: int, bpm: float) -> Float:
    """The sum of several instruments, each rendered alone (own soundfont, own effects)."""
    total = np.zeros((2, length), dtype=np.float32)
    for part in parts:
        if not part.notes:
            continue
        audio = synth.render_part(part, length, bpm, pick_soundfont(rng, recipe))
        total += augment.instrument(rng, audio) if recipe.effects else audio
    return total


def example(recipe: Recipe, index: int) -> dict[str, Float]:
    """Stems `piano` and `rest` (the non-piano part of `other`) for one example."""
    rng = rng_for(recipe, index)
    song = compose.arrangement(rng, recipe.seconds, recipe.corpus_share)
    length = round(recipe.seconds * SAMPLE_RATE)
    return {
        "piano": render_group(rng, recipe, song.piano, length, song.bpm),
        "rest": render_group(rng, recipe, song.others, length, song.bpm),
    }


def example_path(root: Path, recipe: Recipe, index: int) -> Path:
    return root / recipe.split / f"{index:05d}.npy"


def examples(root: Path, split: str) -> list[Path]:
    """The finished examples of a split (never a half-written one)."""
    return sorted((root / split).glob("[0-9][0-9][0-9][0-9][0-9].npy"))


def _write(job: tuple[Path, Recipe, int]) -> int:
    """Render one example into [2 stems (piano, rest), 2, n]; atomic so a kill leaves no junk."""
    root, recipe, index = job
    path = example_path(root, recipe, index)
    stems = example(recipe, index)
    part = path.with_name(f".{path.name}.part")
    with part.open("wb") as f:
        np.save(f, np.stack([stems["piano"], stems["rest"]]))
    os.replace(part, path)
    return index


def generate(root: Path, recipe: Recipe, workers: int = 2) -> list[Path]:
    """Render every missing example of the recipe with `workers` processes."""
    (root / recipe.split).mkdir(parents=True, exist_ok=True)
    todo = [
        (root, recipe, i)
        for i in range(recipe.count)
        if not example_path(root, recipe, i).is_file()
    ]
    if todo:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for done, index in enumerate(pool.imap_unordered(_write, todo), start=1):
                if done % 20 == 0 or done == len(todo):
                    print(
                        f"{recipe.split}: {done}/{len(todo)} rendered (last #{index})", flush=True
                    )
    return [example_path(root, recipe, i) for i in range(recipe.count)]
