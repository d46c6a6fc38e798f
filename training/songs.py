"""Whole songs for the piano model: vocals, drums, bass, piano and the rest, rendered apart.

A song's stems are what the 4-stem network hears mixed (their sum) and what the piano model
must recover, so the training set and the benchmark both come from here; only the soundfonts
(the recipe's `held_out`) and the levels differ.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from separation import decode, synth
from separation.audio import SAMPLE_RATE
from separation.dsp import Float
from separation.synth import Part
from training import compose
from training.data import Recipe, Rng, render_group

# how a stem's parts become audio: data.render_group (FluidSynth), or training.pianos' pianos
GroupRenderer = Callable[[Rng, Recipe, list[Part], int, float], Float]
STEMS = ("vocals", "drums", "bass", "piano", "rest")
LYRICS = (
    synth.BARS_TEXT,
    "hold on, hold on, the night is young and the road is long",
    "ooh, ah, ooh, let it go, let it go, all the way down",
    "tell me where you want to be, tell me what you want to see",
    "hey, hey, come along with me, over the hills and across the sea",
)


def voice(rng: Rng, length: int) -> Float:
    """A sung stand-in: espeak-ng speech at a drawn pitch and speed, looped to `length`."""
    text = LYRICS[int(rng.integers(len(LYRICS)))]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "voice.wav"
        pitch, speed = int(rng.integers(20, 90)), int(rng.integers(110, 180))
        spoken = decode(synth.speak(text, out, pitch=pitch, speed=speed))
    reps = length // spoken.shape[1] + 1
    return synth.fit(np.tile(spoken, reps), length)


def instruments(
    rng: Rng, recipe: Recipe, song: compose.Arrangement, length: int,
    piano: GroupRenderer = render_group,
) -> dict[str, Float]:
    """Drums, bass, piano and the rest of one song, each instrument rendered alone."""
    drums = song.drums or synth.Part(0, channel=synth.DRUM_CHANNEL)
    bass = song.bass or synth.Part(33)
    return {
        "drums": render_group(rng, recipe, [drums], length, song.bpm),
        "bass": render_group(rng, recipe, [bass], length, song.bpm),
        "piano": piano(rng, recipe, song.piano, length, song.bpm),
        "rest": render_group(rng, recipe, song.others, length, song.bpm),
    }


def stems(rng: Rng, recipe: Recipe, song: compose.Arrangement, seconds: float,
          piano: GroupRenderer = render_group) -> dict[str, Float]:
    """The five known stems of one song: a voice, then the instruments."""
    length = round(seconds * SAMPLE_RATE)
    vocals = voice(rng, length)  # drawn first: the data set on disk was made in this order
    return {"vocals": vocals, **instruments(rng, recipe, song, length, piano)}


def set_level(x: Float, reference: Float, db: float) -> Float:
    """`x` scaled to `db` relative to the energy of `reference` (silence stays silent)."""
    energy, target = float(np.sum(x.astype(np.float64) ** 2)), float(np.sum(reference**2.0))
    if energy == 0.0 or target == 0.0:
        return x
    scaled: Float = (x * np.sqrt(target / energy * 10 ** (db / 10))).astype(np.float32)
    return scaled


def training_song(
    recipe: Recipe, index: int, piano: GroupRenderer = render_group
) -> dict[str, Float]:
    """Example `index` of a training recipe: levels drawn so piano is quiet, even or loud."""
    rng = np.random.default_rng([recipe.seed, 7, index])  # the splits differ by seed
    song = compose.arrangement(rng, recipe.seconds, recipe.corpus_share)
    out = stems(rng, recipe, song, recipe.seconds, piano)
    out["piano"] = set_level(out["piano"], out["rest"], float(rng.uniform(-12.0, 6.0)))
    out["vocals"] = out["vocals"] * np.float32(rng.uniform(0.0, 0.6) if rng.random() < 0.8 else 0.0)
    return out
