"""The data recipe: which soundfonts and effects, and instruments rendered one per file.

Example `i` of a split is a pure function of (seed, split, i), so the set is reproducible
and generation resumes where it stopped (training/teacher.py writes the files).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from separation import synth
from separation.dsp import Float
from separation.synth import Part
from training import augment
from training.instruments import (
    HELD_OUT_SOUNDFONT,
    TRAIN_SOUNDFONTS,
    Soundfonts,
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
    soundfonts: Soundfonts = TRAIN_SOUNDFONTS  # what the parts draw from, unless held out


def rng_for(recipe: Recipe, index: int) -> Rng:
    return np.random.default_rng([recipe.seed, zlib.crc32(recipe.split.encode()), index])


def pick_soundfont(rng: Rng, recipe: Recipe) -> Path:
    if recipe.held_out:
        return soundfont_path(HELD_OUT_SOUNDFONT)
    names = [name for name, _ in recipe.soundfonts]
    weights = np.asarray([weight for _, weight in recipe.soundfonts])
    return soundfont_path(str(rng.choice(names, p=weights / weights.sum())))


def render_group(rng: Rng, recipe: Recipe, parts: list[Part], length: int, bpm: float) -> Float:
    """The sum of several instruments, each rendered alone (own soundfont, own effects)."""
    total = np.zeros((2, length), dtype=np.float32)
    for part in parts:
        if not part.notes:
            continue
        audio = synth.render_part(part, length, bpm, pick_soundfont(rng, recipe))
        total += augment.instrument(rng, audio) if recipe.effects else audio
    return total
