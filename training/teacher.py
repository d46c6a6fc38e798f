"""The piano model's data as the runtime sees it: whole songs, then HT-Demucs over each, once.

`render` writes songs/NNNNN.npy ([5 stems, 2, SEGMENT] float32: vocals, drums, bass, piano,
rest); `teach` runs the 4-stem network on each mix and writes teacher/NNNNN.npy ([4, 2,
SEGMENT] float16, in the network's order: drums, bass, other, vocals). Both resume where
they stopped (one atomic file per example); a song is a pure function of (seed, index).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from separation import model_files
from separation.audio import SAMPLE_RATE
from separation.dsp import Float
from separation.htdemucs import SEGMENT, HTDemucs
from separation.runtime import RuntimeConfig
from training import songs
from training.data import Recipe
from training.instruments import EVERY_SOUNDFONT

# one network forward per song: the runtime's chunk is exactly this long
TRAIN = Recipe("train", count=600, seconds=SEGMENT / SAMPLE_RATE, seed=11)
# more songs, drawn from every training soundfont Debian packages (TRAIN keeps its three)
MORE = Recipe("more", count=300, seconds=SEGMENT / SAMPLE_RATE, seed=13,
              soundfonts=EVERY_SOUNDFONT)
TRAINING = (TRAIN, MORE)
VALID = Recipe("valid", count=12, seconds=SEGMENT / SAMPLE_RATE, seed=12, held_out=True,
               effects=False)


def song_path(root: Path, recipe: Recipe, index: int) -> Path:
    return root / recipe.split / "songs" / f"{index:05d}.npy"


def teacher_path(root: Path, recipe: Recipe, index: int) -> Path:
    return root / recipe.split / "teacher" / f"{index:05d}.npy"


def _save(path: Path, array: np.ndarray) -> None:
    """Write atomically, so a kill leaves either the whole example or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.part")
    with part.open("wb") as f:
        np.save(f, array)
    os.replace(part, path)


Song = Callable[[Recipe, int], dict[str, Float]]  # a module-level function (sent to workers)


def _render_one(job: tuple[Path, Recipe, int, Song]) -> int:
    root, recipe, index, song = job
    stems = song(recipe, index)
    _save(song_path(root, recipe, index), np.stack([stems[name] for name in songs.STEMS]))
    return index


def render(root: Path, recipe: Recipe, workers: int = 2,
           song: Song = songs.training_song) -> None:
    """Render every missing song of the recipe with `workers` processes."""
    todo = [(root, recipe, i, song) for i in range(recipe.count)
            if not song_path(root, recipe, i).is_file()]
    if not todo:
        return
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for done, index in enumerate(pool.imap_unordered(_render_one, todo), start=1):
            if done % 20 == 0 or done == len(todo):
                print(f"{recipe.split}: {done}/{len(todo)} songs rendered (last #{index})",
                      flush=True)


def teach(root: Path, recipe: Recipe, model_dir: Path | None = None) -> None:
    """Run HT-Demucs (the runtime's own network and settings) over every song not yet done."""
    todo = [i for i in range(recipe.count)
            if song_path(root, recipe, i).is_file() and not teacher_path(root, recipe, i).is_file()]
    if not todo:
        return
    folder = model_dir or model_files.model_dir()
    network = HTDemucs(model_files.verified_path(model_files.HTDEMUCS, folder),
                       model_files.htdemucs_parts(folder), RuntimeConfig())
    started = time.monotonic()
    for done, index in enumerate(todo, start=1):
        four = separate(network, np.load(song_path(root, recipe, index)))
        _save(teacher_path(root, recipe, index), four.astype(np.float16))
        if done % 20 == 0 or done == len(todo):
            rate = (time.monotonic() - started) / done
            print(f"{recipe.split}: {done}/{len(todo)} through HT-Demucs ({rate:.1f} s each)",
                  flush=True)


def separate(network: HTDemucs, stems: Float) -> Float:
    """The 4 sources HT-Demucs gives for the mix of one song's [5, 2, SEGMENT] stems."""
    mix: Float = stems.sum(axis=0, dtype=np.float32)
    return network(mix)


def pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    """(songs, teacher) files of a split where both are finished."""
    folder = root / split
    out = []
    for song in sorted((folder / "songs").glob("[0-9][0-9][0-9][0-9][0-9].npy")):
        teacher = folder / "teacher" / song.name
        if teacher.is_file():
            out.append((song, teacher))
    return out
