"""Rendered songs whose tempo, key and chords are known, for the song-facts tests and benchmarks.

Two kinds. `song_stems`: song i is a generated arrangement (training/compose.py) at 60-180 BPM
(spread by the golden ratio) in key i mod 24, with drums, bass, piano or not, 1-3 other
instruments and a spoken voice (espeak-ng), rendered with FluidSynth; `generator_song` adds
the chords its parts follow. `other_song`: songs written here as pop and rock songs are, in
two styles (`OTHER`, `ROCK`: their loops, endings, tempi and soundfonts), never used by the
tuning of the key. A song is a pure function of its index and length (seeded).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from separation import decode, synth
from separation.dsp import Float
from separation.htdemucs import SAMPLE_RATE
from training import compose, songs

GENERATED_SEED = 1212
GOLDEN = (math.sqrt(5) - 1) / 2
WRITTEN_SEED = 2323
SOUNDFONT = "TimGM6mb.sf2"


def known(index: int) -> tuple[float, compose.Key]:
    """Song `index`'s tempo and key: tempi spread over 60-180 BPM, keys cycling all 24."""
    bpm = round(60 + 120 * ((index * GOLDEN) % 1), 1)
    return bpm, (index % 12, (index // 12) % 2 == 1)


def song_stems(index: int, seconds: float, voice: bool = True) -> tuple[compose.Arrangement,
                                                                        dict[str, Float]]:
    """The arrangement and its rendered stems (vocals, drums, bass, piano, other)."""
    bpm, key = known(index)
    rng = np.random.default_rng([GENERATED_SEED, index])
    song = compose.generated(rng, seconds, bpm=bpm, key=key)
    length = round(seconds * SAMPLE_RATE)

    def group(parts: list[synth.Part]) -> Float:
        total = np.zeros((2, length), dtype=np.float32)
        for part in parts:
            if part.notes:
                total += synth.render_part(part, length, song.bpm)
        return total

    stems = {"drums": group([song.drums] if song.drums else []),
             "bass": group([song.bass] if song.bass else []),
             "piano": group(song.piano), "other": group(song.others)}
    stems["vocals"] = _voice(rng, length) if voice else np.zeros((2, length), np.float32)
    return song, stems


def _voice(rng: np.random.Generator, length: int) -> Float:
    with tempfile.TemporaryDirectory() as tmp:
        speech = decode(synth.speak(synth.BARS_TEXT, Path(tmp) / "v.wav",
                                    pitch=int(rng.integers(30, 80))))
    reps = length // speech.shape[1] + 1
    return synth.fit(np.tile(speech, reps) * np.float32(rng.uniform(0.2, 0.4)), length)


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


def generator_song(index: int, seconds: float) -> Song:
    """Song `index` of `song_stems`, with the chords its parts follow."""
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


OTHER = Style(WRITTEN_SEED, SOUNDFONT, 66, 106, math.sqrt(2) - 1, MAJOR_SONGS, MINOR_SONGS,
              2 / 3, 0.0, False, False)
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
    """A song written as pop and rock songs are (`style`: its loops and endings), in key
    index mod 24 (in fifths with `style.fifths`: C G D ... major, then minor)."""
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
