"""The piano data recipe: reproducible examples, the held-out soundfont kept out of training,
and piano programs only in the piano stem. Needs FluidSynth and TimGM6mb, not PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from separation import synth
from separation.audio import SAMPLE_RATE
from separation.synth import Part
from training import compose, data, songs
from training.instruments import (
    EVERY_SOUNDFONT,
    HELD_OUT_SOUNDFONT,
    PIANO_PROGRAMS,
    TRAIN_SOUNDFONTS,
)

# generated songs only: the corpus share needs music21, a training-only dependency
HELD_OUT = data.Recipe("test", count=4, seconds=2.0, seed=11, held_out=True, corpus_share=0.0)


def test_an_example_is_a_pure_function_of_seed_split_and_index() -> None:
    first, again = songs.training_song(HELD_OUT, 1), songs.training_song(HELD_OUT, 1)
    assert list(first) == list(songs.STEMS)
    for stem in songs.STEMS:
        assert first[stem].shape == (2, round(2.0 * SAMPLE_RATE))
        np.testing.assert_array_equal(first[stem], again[stem])
    assert np.abs(first["rest"]).max() > 0 and np.abs(first["drums"]).max() > 0
    assert not np.array_equal(first["rest"], songs.training_song(HELD_OUT, 2)["rest"])


def soundfonts_drawn(recipe: data.Recipe, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The soundfont of every part rendered for the recipe's examples (nothing is rendered)."""
    used: set[str] = set()

    def record(part: Part, length: int, bpm: float, soundfont: Path) -> np.ndarray:
        used.add(soundfont.name)
        return np.zeros((2, length), dtype=np.float32)

    monkeypatch.setattr(synth, "render_part", record)
    monkeypatch.setattr(data, "soundfont_path", Path)  # training fonts need not be installed
    for index in range(recipe.count):
        songs.training_song(recipe, index)
    return used


def test_held_out_soundfont_never_renders_training_data(monkeypatch: pytest.MonkeyPatch) -> None:
    train = soundfonts_drawn(data.Recipe("train", 40, 2.0, corpus_share=0.0), monkeypatch)
    assert HELD_OUT_SOUNDFONT not in train
    assert train == {name for name, _ in TRAIN_SOUNDFONTS}
    every = data.Recipe("more", 60, 2.0, corpus_share=0.0, soundfonts=EVERY_SOUNDFONT)
    assert soundfonts_drawn(every, monkeypatch) == {name for name, _ in EVERY_SOUNDFONT}
    assert soundfonts_drawn(HELD_OUT, monkeypatch) == {HELD_OUT_SOUNDFONT}


def test_piano_programs_play_only_in_the_piano_stem() -> None:
    with_piano = 0
    for seed in range(60):
        song = compose.generated(np.random.default_rng(seed), 4.0)
        assert all(part.program in PIANO_PROGRAMS for part in song.piano)
        assert all(part.program not in PIANO_PROGRAMS for part in song.others)
        assert song.drums is not None and song.bass is not None
        with_piano += bool(song.piano)
    # most songs have a piano part; some have none, so the model also learns to stay silent
    assert 40 <= with_piano < 60
