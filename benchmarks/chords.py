"""Chords and key measured on rendered songs whose chords are known, three sets made differently.

    .venv/bin/python -m benchmarks.chords [--set generator|other|rock] [--songs 24]
        [--seconds 30] [--separated] [--json out.json]

`generator`: the song-facts benchmark's songs (training/compose.py: its progressions, its
bass on the lowest chord tone, FluidR3), the ones the key was tuned on. `other`: songs written
here as pop and rock songs are: other progressions (I V vi IV, vi IV I V, i VI III VII, the
Andalusian cadence, ii V I, harmonic minor's V, a blues), the bass on the root, an intro on
any chord, two of three ending on a cadence to the tonic; strummed guitar, pads, electric
piano, a lead line; tempi 66-172 BPM and the TimGM6mb soundfont, never used by the tuning.
`rock`: as `other`, with other loops (natural minor's v, I IV V IV, vi V IV V, ...), keys in
fifths order, 50-200 BPM, FluidR3, a third ending on V-I and a sixth on IV-I, the cadence
always within the song.
Chords: the share of time (10 ms steps) whose root and major/minor quality are right, over
the time whose true chord is a major or minor triad or seventh (diminished ones are left out,
as MIREX's majmin does); enharmonics are equal (pitch classes). Key: exact or not. By
default the facts are read from the true stems; `--separated` runs the 4-stem engine first,
as a job does.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from benchmarks.report import song_line, write_report
from benchmarks.song_facts import separate
from separation import OutputFormat, Separator, decode, encode
from separation.chords import NO_CHORD, Chord, chroma, essentia_chords
from separation.dsp import Float
from separation.facts import SongFacts, song_facts
from separation.htdemucs import SAMPLE_RATE
from separation.key import (
    KEY_DECIMATION,
    KEY_WEIGHTS,
    MIN_SEQUENCE,
    Key,
    candidates,
    estimate_key,
    key_terms,
    profile_key,
)
from support.songs import STYLES, Song, Truth, generator_song, other_song


@dataclass(frozen=True, slots=True)
class Result:
    index: int
    bpm: float
    key: str
    found_key: str | None
    key_exact: bool
    key_miss: str  # "" if exact, else relative, fifth, parallel, other or unclear
    profile_key: str | None  # the pitch profile's own reading, before the chords
    # the key as read before the chord sequence chose it: the profile's key or its relative,
    # by tonic and dominant chord frames (estimate_key without chords)
    frames_key_miss: str
    chords_right: float  # seconds
    chords_scored: float
    essentia_right: float
    chords: int  # segments found


def chord_score(truth: Truth, found: list[Chord], seconds: float) -> tuple[float, float]:
    """(seconds right, seconds scored): root and quality on 10 ms steps, diminished left out."""
    steps = np.arange(0.0, seconds, 0.01)
    want = np.full(len(steps), -1)
    for s, e, root, minor in truth:
        want[(steps >= s) & (steps < e)] = -1 if minor is None else root + 12 * minor
    got = np.full(len(steps), -2)
    for chord in found:
        got[(steps >= chord.start) & (steps < chord.end)] = chord.root + 12 * chord.minor
    scored = want >= 0
    return round(float(np.sum(scored & (want == got))) * 0.01, 2), round(float(scored.sum()) *
                                                                         0.01, 2)


def facts_of(song: Song, separated: bool, folder: Path, index: int) -> tuple[SongFacts, Float]:
    """The facts, and the harmonic stems (bass and other) they read the key from, at 11 kHz:
    the true stems, or with `separated` the 4-stem engine's."""
    mix: Float = np.sum(list(song.stems.values()), axis=0)
    if not separated:
        return song_facts(mix, song.stems), harmonic(song.stems)
    source = encode(folder / f"song-{index}.wav", mix, OutputFormat.WAV_FLOAT)
    out = folder / f"out-{index}"
    facts, _, _ = separate(_separator(), source, out)
    return facts, harmonic({stem: decode(out / f"{stem}.wav") for stem in ("bass", "other")})


@functools.cache
def _separator() -> Separator:
    return Separator()


def harmonic(stems: dict[str, Float]) -> Float:
    """Bass and other, mono at 11 kHz: what the facts read the key from."""
    mono = (stems["bass"] + stems["other"]).mean(axis=0)
    mono = mono[: len(mono) // KEY_DECIMATION * KEY_DECIMATION]
    decimated: Float = mono.reshape(-1, KEY_DECIMATION).mean(axis=1).astype(np.float32)
    return decimated


def key_miss(truth: Key, found: Key | None) -> str:
    """How a key reading misses: "" (exact), relative, fifth (same mode), parallel, other or
    unclear."""
    if found is None:
        return "unclear"
    if (found.tonic, found.minor) == (truth.tonic, truth.minor):
        return ""
    if found.minor == truth.minor:
        return "fifth" if (found.tonic - truth.tonic) % 12 in (5, 7) else "other"
    if found.tonic == truth.tonic:
        return "parallel"
    return "relative" if found.tonic == (truth.tonic + (3 if truth.minor else 9)) % 12 else "other"


def measure(index: int, song: Song, facts: SongFacts, seconds: float, mono: Float) -> Result:
    """`mono`: the harmonic stems the facts read (`harmonic`)."""
    right, scored = chord_score(song.truth, list(facts.chords), seconds)
    # essentia's ChordsDetection on the chroma the key reads (bass and other, its own HPCP)
    theirs = essentia_chords(chroma(mono, SAMPLE_RATE / KEY_DECIMATION), seconds)
    profile = profile_key(mono)
    truth = Key(song.tonic, song.minor, 1.0)
    miss = key_miss(truth, facts.key)
    return Result(index, song.bpm, truth.name, facts.key.name if facts.key else None, not miss,
                  miss, profile.name if profile else None,
                  key_miss(truth, estimate_key(mono)), right, scored,
                  chord_score(song.truth, theirs, seconds)[0], len(facts.chords))


def fit_key_weights(examples: list[tuple[Key, list[Chord], Key]], l2: float = 0.01
                    ) -> dict[str, float]:
    """`KEY_WEIGHTS` fitted to (profile's key, chords, true key) examples: the conditional logit
    over each song's candidate keys (the true one's probability), with an L2 penalty `l2`.
    Songs with too few chords, or whose true key is no candidate, teach nothing."""
    rows: list[tuple[Float, int]] = []
    for profile, chords, truth in examples:
        sounding = [c for c in chords if c.root != NO_CHORD]
        labels = [(k.tonic, k.minor) for k in candidates(profile)]
        if len(sounding) < MIN_SEQUENCE or (truth.tonic, truth.minor) not in labels:
            continue
        terms = [key_terms(k, sounding, profile) for k in candidates(profile)]
        rows.append((np.array([[t[name] for name in KEY_WEIGHTS] for t in terms]),
                     labels.index((truth.tonic, truth.minor))))

    def loss(weights: Float) -> float:
        total = 0.0
        for terms, right in rows:
            score = terms @ weights
            score -= score.max()
            total -= float(score[right] - np.log(np.exp(score).sum()))
        return total / max(len(rows), 1) + l2 * float(weights @ weights)

    fitted = minimize(loss, np.zeros(len(KEY_WEIGHTS)), method="L-BFGS-B").x
    return {name: round(float(w), 2) for name, w in zip(KEY_WEIGHTS, fitted, strict=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--set", choices=("generator", "other", "rock"), default="other")
    parser.add_argument("--songs", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--separated", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--fit", action="store_true",
                        help="also fit the key's weights to these songs (KEY_WEIGHTS)")
    args = parser.parse_args()
    make = generator_song if args.set == "generator" else functools.partial(
        other_song, style=STYLES[args.set])
    results = []
    examples: list[tuple[Key, list[Chord], Key]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(args.songs):
            song = make(index, args.seconds)
            facts, mono = facts_of(song, args.separated, Path(tmp), index)
            result = measure(index, song, facts, args.seconds, mono)
            results.append(result)
            if profile := profile_key(mono):
                examples.append((profile, list(facts.chords), Key(song.tonic, song.minor, 1.0)))
            song_line(result)
    scored = sum(r.chords_scored for r in results)
    report = {"set": args.set, "songs": args.songs, "seconds": args.seconds,
              "separated": args.separated,
              "chords_right": round(sum(r.chords_right for r in results) / scored, 3),
              "essentia_chords_detection_right": round(
                  sum(r.essentia_right for r in results) / scored, 3),
              "key_exact": sum(r.key_exact for r in results),
              "key_misses": {m: sum(r.key_miss == m for r in results) for m in
                             ("relative", "fifth", "parallel", "other", "unclear")},
              "profile_key_exact": sum(r.profile_key == r.key for r in results),
              "frames_key_exact": sum(not r.frames_key_miss for r in results),
              "frames_key_misses": {m: sum(r.frames_key_miss == m for r in results) for m in
                                    ("relative", "fifth", "parallel", "other", "unclear")},
              "segments_per_minute": round(sum(r.chords for r in results)
                                           / (args.songs * args.seconds / 60), 1)}
    if args.fit:
        report["fitted_key_weights"] = fit_key_weights(examples)
    write_report(report, results, args.json)


if __name__ == "__main__":
    main()
