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
import json
import math
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from benchmarks.song_facts import separate, song_stems
from separation import OutputFormat, Separator, decode, encode, synth
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
from training import songs

SEED = 2323
SOUNDFONT = "TimGM6mb.sf2"
Truth = list[tuple[float, float, int, bool | None]]  # seconds, root, minor (None: diminished)

# (semitones above the tonic, minor) per chord, one bar each unless the song halves it
MAJOR_SONGS = (
    ((0, False), (7, False), (9, True), (5, False)),  # I V vi IV
    ((9, True), (5, False), (0, False), (7, False)),  # vi IV I V
    ((0, False), (9, True), (5, False), (7, False)),  # I vi IV V
    ((2, True), (7, False), (0, False), (0, False)),  # ii V I I
    ((0, False), (10, False), (5, False), (0, False)),  # I bVII IV I
    ((0, False), (5, False), (0, False), (7, False)),  # I IV I V
    ((5, False), (0, False), (7, False), (9, True)),  # IV I V vi
    ((0, False), (4, True), (5, False), (7, False)),  # I iii IV V
)
MINOR_SONGS = (
    ((0, True), (8, False), (3, False), (10, False)),  # i VI III VII
    ((0, True), (10, False), (8, False), (7, False)),  # i VII VI V (Andalusian)
    ((0, True), (5, True), (7, False), (0, True)),  # i iv V i
    ((0, True), (8, False), (5, True), (7, False)),  # i VI iv V
    ((0, True), (5, True), (10, False), (3, False)),  # i iv VII III
    ((8, False), (10, False), (0, True), (0, True)),  # VI VII i i
)


@dataclass(frozen=True, slots=True)
class Song:
    bpm: float
    tonic: int
    minor: bool
    truth: Truth
    stems: dict[str, Float]  # vocals, drums, bass, other (piano summed into other)


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


def generator_song(index: int, seconds: float) -> Song:
    """Song `index` of benchmarks/song_facts.py, with the chords its parts follow."""
    song, stems = song_stems(index, seconds)
    truth: Truth = []
    for chord in song.chords:
        p = chord.pitches
        quality = None if p[2] - p[0] == 6 else p[1] - p[0] == 3
        truth.append((chord.start * 60 / song.bpm, (chord.start + chord.length) * 60 / song.bpm,
                      p[0] % 12, quality))
    return Song(song.bpm, song.tonic, song.minor, truth, {
        "vocals": stems["vocals"], "drums": stems["drums"], "bass": stems["bass"],
        "other": stems["piano"] + stems["other"]})


@dataclass(frozen=True, slots=True)
class Style:
    """How a set of songs written here differs: its seed, soundfont, tempi, loops, endings."""

    seed: int
    soundfont: str
    slowest: float  # BPM; songs spread over slowest..slowest + span by an irrational step
    span: float
    step: float
    major: tuple[tuple[tuple[int, bool], ...], ...]
    minor: tuple[tuple[tuple[int, bool], ...], ...]
    cadence: float  # share of songs that end on V-I
    plagal: float  # share that end on IV-I (iv-i in minor)
    fifths: bool  # keys in the order of the circle of fifths rather than chromatic
    # the ending's last chord sounds within the song: `other` lets the loop's last chord run
    # on, so a cadence may begin after its last 8 beats and its tonic fall past the end
    in_time: bool


OTHER = Style(SEED, SOUNDFONT, 66, 106, math.sqrt(2) - 1, MAJOR_SONGS, MINOR_SONGS, 2 / 3, 0.0,
              False, False)
# `rock`: other loops, FluidR3 (the generator's soundfont, but not its arrangements), 50-200 BPM,
# a third ending on V-I, a sixth on IV-I, the rest where the loop is; minor songs often in
# natural minor (v, not V), as rock writes them
ROCK = Style(3434, "FluidR3_GM.sf2", 50, 150, math.sqrt(3) - 1, (
    ((0, False), (5, False), (7, False), (5, False)),  # I IV V IV
    ((0, False), (7, False), (5, False), (7, False)),  # I V IV V
    ((2, True), (5, False), (0, False), (7, False)),  # ii IV I V
    ((0, False), (4, True), (9, True), (5, False)),  # I iii vi IV
    ((0, False), (9, True), (2, True), (7, False)),  # I vi ii V
    ((5, False), (7, False), (0, False), (0, False)),  # IV V I I
    ((0, False), (0, False), (5, False), (7, False)),  # I I IV V
    ((9, True), (7, False), (5, False), (7, False)),  # vi V IV V
), (
    ((0, True), (10, False), (8, False), (10, False)),  # i VII VI VII
    ((0, True), (7, True), (5, True), (0, True)),  # i v iv i
    ((0, True), (3, False), (10, False), (8, False)),  # i III VII VI
    ((0, True), (5, True), (8, False), (7, False)),  # i iv VI V
    ((0, True), (0, True), (8, False), (10, False)),  # i i VI VII
    ((5, True), (0, True), (7, True), (0, True)),  # iv i v i
), 1 / 3, 1 / 6, True, True)
STYLES = {"other": OTHER, "rock": ROCK}


def other_song(index: int, seconds: float, style: Style = OTHER) -> Song:
    """A song written as pop and rock songs are (module doc), in key index mod 24 (in fifths
    with `style.fifths`: C G D ... major, then minor)."""
    rng = np.random.default_rng([style.seed, index])
    tonic = (index * 7 if style.fifths else index) % 12
    minor = (index // 12) % 2 == 1
    bpm = round(style.slowest + style.span * ((index * style.step) % 1), 1)
    loops = style.minor if minor else style.major
    pattern = loops[int(rng.integers(len(loops)))]
    beats_per = float(rng.choice([2.0, 4.0, 4.0, 8.0]))
    total = math.ceil(seconds * bpm / 60)
    chords: list[tuple[float, int, bool]] = []  # start beat, pitch class, minor
    start = int(rng.integers(len(pattern)))  # the intro may open on any chord of the loop
    t, k = 0.0, start
    ending = rng.random()
    # V (a bar) or IV (iv in minor) to the tonic (held to the end), or the loop to the end
    before = ((7, False) if ending < style.cadence else
              (5, minor) if ending < style.cadence + style.plagal else None)
    end = total - 8 if before else total
    while t < end:
        step, quality = pattern[k % len(pattern)]
        chords.append((t, (tonic + step) % 12, quality))
        t, k = t + beats_per, k + 1
    if before:
        t = min(t, end) if style.in_time else t
        chords += [(t, (tonic + before[0]) % 12, before[1]), (t + 4, tonic, minor)]
    bounds = [c[0] for c in chords[1:]] + [float(total + 4)]
    spans = [(s, e, r, q) for (s, r, q), e in zip(chords, bounds, strict=True)]
    parts = _parts(rng, spans, total)
    length = round(seconds * SAMPLE_RATE)
    soundfont = synth.find_soundfont(style.soundfont)

    def render(group: list[synth.Part]) -> Float:
        out = np.zeros((2, length), np.float32)
        for part in group:
            if part.notes:
                out += synth.render_part(part, length, bpm, soundfont)
        return out

    stems = {"vocals": songs.voice(rng, length) * np.float32(rng.uniform(0.2, 0.5)),
             "drums": render(parts["drums"]), "bass": render(parts["bass"]),
             "other": render(parts["other"])}
    truth: Truth = [(s * 60 / bpm, e * 60 / bpm, r, q) for s, e, r, q in spans]
    return Song(bpm, tonic, minor, truth, stems)


def _triad(root: int, minor: bool, low: int, size: int, seventh: bool) -> list[int]:
    intervals = [0, 3 if minor else 4, 7] + ([10] if seventh else [])
    classes = {(root + i) % 12 for i in intervals}
    return [p for p in range(low, low + 24) if p % 12 in classes][:size]


def _parts(rng: np.random.Generator, spans: list[tuple[float, float, int, bool]],
           total: int) -> dict[str, list[synth.Part]]:
    """Drums, a root-and-fifth bass, 1-2 harmony parts (strums, pad, electric piano) and
    sometimes a lead line on the chord tones with passing notes."""
    drums = synth.Part(0, channel=synth.DRUM_CHANNEL)
    for count in range(total):
        drums.notes.append(synth.Note(count, 0.2, 36 if count % 2 == 0 else 38, 100))
        drums.notes += [synth.Note(count + h, 0.1, 42 if count % 4 else 49, 60) for h in (0, 0.5)]
    bass = synth.Part(int(rng.choice([33, 34, 35, 38])), channel=2)
    steps = (0, 0, 7, 12) if rng.random() < 0.5 else (0, 0, 0, 0)
    for s, e, root, _ in spans:
        for k, beat in enumerate(np.arange(s, e, 1.0)):
            bass.notes.append(synth.Note(float(beat), 0.85, 28 + (root - 4) % 12 + steps[k % 4],
                                         100))
    harmony: list[synth.Part] = []
    kinds = rng.choice(["strum", "pad", "epiano"], size=int(rng.integers(1, 3)), replace=False)
    for channel, kind in enumerate(kinds, start=3):
        seventh = rng.random() < 0.3
        low = int(rng.integers(52, 62))
        program = {"strum": int(rng.choice([24, 25, 27])), "pad": int(rng.choice([48, 89, 19])),
                   "epiano": int(rng.choice([4, 5]))}[str(kind)]
        part = synth.Part(program, channel=channel)
        for s, e, root, minor in spans:
            pitches = _triad(root, minor, low, 4, seventh)
            if kind == "pad":
                part.notes += [synth.Note(s, e - s - 0.05, p, 70) for p in pitches]
                continue
            hits = (0.0, 1.0, 1.5, 2.5, 3.0) if kind == "strum" else (0.5, 1.5, 2.5, 3.5)
            for bar in np.arange(s, e, 4.0):
                for h in hits:
                    if bar + h < e:
                        part.notes += [synth.Note(float(bar + h + 0.015 * i), 0.45, p, 80)
                                       for i, p in enumerate(pitches)]
        harmony.append(part)
    if rng.random() < 0.5:
        lead = synth.Part(int(rng.choice([56, 65, 73, 81])), channel=6)
        for s, e, root, minor in spans:
            tones = _triad(root, minor, 67, 4, False)
            for beat in np.arange(s, e, 1.0):
                pitch = int(rng.choice(tones)) + (2 if rng.random() < 0.2 else 0)  # passing
                lead.notes.append(synth.Note(float(beat), 0.9, pitch, 85))
        harmony.append(lead)
    return {"drums": [drums], "bass": [bass], "other": harmony}


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
            print(json.dumps(asdict(result)), flush=True)
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
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"summary": report,
                                         "songs": [asdict(r) for r in results]}, indent=1))


if __name__ == "__main__":
    main()
