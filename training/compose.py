"""Arrangements for the piano data: generated songs and Bach chorales from music21's corpus.

Every arrangement has piano parts (sometimes none, so the model learns silence), the
instruments that share `other` with them, and a drum kit and a bass line for the full mixes
the benchmark builds. Times are in beats; all randomness comes from the caller's Generator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from separation.synth import DRUM_CHANNEL, Note, Part
from training.instruments import BASS_PROGRAMS, OTHER_FAMILIES, PIANO_PROGRAMS

Rng = np.random.Generator
MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
# scale degrees (0 = tonic) of common progressions, one chord per entry
PROGRESSIONS = (
    (0, 4, 5, 3),
    (0, 5, 3, 4),
    (5, 3, 0, 4),
    (1, 4, 0, 0),
    (0, 3, 4, 3),
    (0, 3, 0, 4),
    (0, 6, 5, 4),
    (0, 2, 3, 4),
    (3, 4, 2, 5),
    (0, 0, 3, 3, 0, 4, 3, 0),
)
NO_PIANO_SHARE = 0.12


@dataclass(frozen=True, slots=True)
class Chord:
    start: float  # beats
    length: float
    pitches: tuple[int, ...]  # pitch classes + octave-free degrees, lowest first (MIDI 48-59 root)


@dataclass(slots=True)
class Arrangement:
    """One song's parts, split by the stem they belong to."""

    bpm: float
    beats: float
    tonic: int = 0  # pitch class of the key, 0 = C
    minor: bool = False
    opening: int = 0  # scale degree of the first chord (0: the tonic)
    piano: list[Part] = field(default_factory=list)
    others: list[Part] = field(default_factory=list)
    drums: Part | None = None
    bass: Part | None = None
    chords: list[Chord] = field(default_factory=list)  # the progression the parts follow


Key = tuple[int, bool]  # (tonic pitch class, minor)


def progression(
    rng: Rng, beats: float, beats_per_chord: float, key: Key | None = None
) -> tuple[list[Chord], tuple[int, ...]]:
    """Chords over `beats`: a key, a progression, triads or sevenths; returns chords and scale.

    A given `key` replaces the drawn one; the draws still happen, so the rest stays the same.
    """
    drawn = (int(rng.integers(0, 12)), bool(rng.random() < 0.4))
    tonic, minor = key or drawn
    scale = tuple((tonic + s) for s in (MINOR if minor else MAJOR))
    degrees = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    sevenths = rng.random() < 0.35
    chords: list[Chord] = []
    t, i = 0.0, 0
    while t < beats:
        d = degrees[i % len(degrees)]
        steps = (0, 2, 4, 6) if sevenths else (0, 2, 4)
        pitches = tuple(48 + scale[(d + s) % 7] + 12 * ((d + s) // 7) for s in steps)
        chords.append(Chord(t, beats_per_chord, pitches))
        t, i = t + beats_per_chord, i + 1
    return chords, scale


def voicing(chord: Chord, low: int, size: int) -> list[int]:
    """`size` chord tones stacked upward from the first one at or above `low`."""
    classes = [p % 12 for p in chord.pitches]
    out: list[int] = []
    pitch = low
    while len(out) < size:
        if pitch % 12 in classes:
            out.append(pitch)
        pitch += 1
    return out


def _velocity(rng: Rng, base: int) -> int:
    return int(np.clip(base + rng.integers(-10, 11), 20, 127))


def block_chords(rng: Rng, chords: list[Chord], low: int, base: int) -> list[Note]:
    rhythms = (
        (0.0,),
        (0.0, 2.0),
        (0.0, 1.0, 2.0, 3.0),
        (0.0, 1.5, 2.5, 3.5),
        (0.0, 0.75, 2.0, 2.75),
    )
    rhythm = rhythms[int(rng.integers(len(rhythms)))]
    size = int(rng.integers(3, 6))
    notes: list[Note] = []
    for chord in chords:
        onsets = [o for bar in np.arange(0, chord.length, 4.0) for o in (bar + r for r in rhythm)]
        onsets = [o for o in onsets if o < chord.length]
        for k, onset in enumerate(onsets):
            end = onsets[k + 1] if k + 1 < len(onsets) else chord.length
            length = (end - onset) * float(rng.uniform(0.5, 0.98))
            velocity = _velocity(rng, base)
            notes += [
                Note(chord.start + onset, length, p, velocity) for p in voicing(chord, low, size)
            ]
    return notes


def arpeggio(rng: Rng, chords: list[Chord], low: int, base: int) -> list[Note]:
    step = float(rng.choice([0.25, 0.5, 0.5, 1.0 / 3.0]))
    span = int(rng.integers(3, 8))
    shape = int(rng.integers(3))
    sustain = float(rng.uniform(1.0, 4.0))
    notes: list[Note] = []
    for chord in chords:
        tones = voicing(chord, low, span)
        if shape == 1:
            tones = tones + tones[-2:0:-1]
        count = round(chord.length / step)
        for k in range(count):
            pitch = tones[k % len(tones)] if shape < 2 else int(rng.choice(tones))
            notes.append(Note(chord.start + k * step, step * sustain, pitch, _velocity(rng, base)))
    return notes


def alberti(rng: Rng, chords: list[Chord], low: int, base: int) -> list[Note]:
    step = float(rng.choice([0.25, 0.5]))
    notes: list[Note] = []
    for chord in chords:
        a, b, c = voicing(chord, low, 3)
        pattern = (a, c, b, c)
        for k in range(round(chord.length / step)):
            notes.append(Note(chord.start + k * step, step, pattern[k % 4], _velocity(rng, base)))
    return notes


def stride(rng: Rng, chords: list[Chord], low: int, base: int) -> list[Note]:
    """Bass note on beats 1 and 3, chord on 2 and 4: ragtime and pop ballad left hands."""
    notes: list[Note] = []
    for chord in chords:
        root = voicing(chord, max(28, low - 12), 1)[0]
        upper = voicing(chord, low + 5, 3)
        for beat in range(int(chord.length)):
            velocity = _velocity(rng, base)
            if beat % 2 == 0:
                notes.append(Note(chord.start + beat, 0.9, root, velocity))
            else:
                notes += [Note(chord.start + beat, 0.6, p, velocity - 8) for p in upper]
    return notes


def melody(
    rng: Rng, chords: list[Chord], scale: tuple[int, ...], low: int, base: int
) -> list[Note]:
    """A stepwise line on the scale that lands on chord tones on the strong beats."""
    durations = (0.25, 0.5, 0.5, 1.0, 1.0, 1.5, 2.0)
    pool = sorted(p for p in range(low, low + 20) if p % 12 in {s % 12 for s in scale})
    index = len(pool) // 2
    legato = float(rng.uniform(0.6, 1.0))
    notes: list[Note] = []
    t = 0.0
    end = chords[-1].start + chords[-1].length
    while t < end:
        length = float(rng.choice(durations))
        if rng.random() < 0.15:
            t += length  # a rest
            continue
        index = int(np.clip(index + rng.integers(-2, 3), 0, len(pool) - 1))
        pitch = pool[index]
        chord = next(c for c in chords if c.start <= t < c.start + c.length)
        if t % 1.0 == 0 and pitch % 12 not in {p % 12 for p in chord.pitches}:
            pitch = voicing(chord, pitch, 1)[0]
        notes.append(Note(t, length * legato, pitch, _velocity(rng, base)))
        t += length
    return notes


def pad(rng: Rng, chords: list[Chord], low: int, base: int) -> list[Note]:
    size = int(rng.integers(2, 5))
    velocity = _velocity(rng, base)
    return [
        Note(c.start, c.length * 0.98, p, velocity) for c in chords for p in voicing(c, low, size)
    ]


def strum(rng: Rng, chords: list[Chord], low: int, base: int) -> list[Note]:
    """Guitar-style strums: the chord's notes a few hundredths of a beat apart."""
    rhythms = ((0.0, 1.0, 2.0, 3.0), (0.0, 1.5, 2.0, 3.0, 3.5), (0.0, 0.5, 1.5, 2.5, 3.0))
    rhythm = rhythms[int(rng.integers(len(rhythms)))]
    notes: list[Note] = []
    for chord in chords:
        for bar in np.arange(0, chord.length, 4.0):
            for onset in rhythm:
                velocity = _velocity(rng, base)
                for k, pitch in enumerate(voicing(chord, low, 5)):
                    start = chord.start + bar + onset + 0.02 * k
                    notes.append(Note(start, 0.45, pitch, max(20, velocity - 3 * k)))
    return notes


Pattern = Callable[[Rng, list[Chord], int, int], list[Note]]
PIANO_PATTERNS: tuple[Pattern, ...] = (block_chords, arpeggio, alberti, stride, block_chords)
OTHER_PATTERNS: tuple[Pattern, ...] = (pad, strum, arpeggio, block_chords, pad)


def _piano_part(rng: Rng, chords: list[Chord], scale: tuple[int, ...]) -> Part:
    program = int(rng.choice(PIANO_PROGRAMS, p=[0.4, 0.12, 0.1, 0.08, 0.18, 0.12]))
    low = int(rng.integers(40, 62))
    base = int(rng.integers(55, 110))
    pattern = PIANO_PATTERNS[int(rng.integers(len(PIANO_PATTERNS)))]
    notes = pattern(rng, chords, low, base)
    if rng.random() < 0.4:  # a right-hand melody over the comping
        notes += melody(rng, chords, scale, low + 14, base + 5)
    return Part(program, notes, channel=0)


def _other_part(rng: Rng, chords: list[Chord], scale: tuple[int, ...], channel: int) -> Part:
    family = list(OTHER_FAMILIES)[int(rng.integers(len(OTHER_FAMILIES)))]
    program = int(rng.choice(OTHER_FAMILIES[family]))
    low = int(rng.integers(40, 72))
    base = int(rng.integers(50, 110))
    if family in ("synth_lead", "reed", "pipe", "brass") and rng.random() < 0.7:
        notes = melody(rng, chords, scale, low, base)
    else:
        notes = OTHER_PATTERNS[int(rng.integers(len(OTHER_PATTERNS)))](rng, chords, low, base)
    return Part(program, notes, channel=channel)


def drum_part(rng: Rng, beats: float) -> Part:
    """Kick, snare and hi-hat in one of a few grooves, with fills of ghost notes."""
    hats = float(rng.choice([0.5, 0.25]))
    drums = Part(0, channel=DRUM_CHANNEL)
    for beat in range(int(beats)):
        kick = beat % 2 == 0 or (rng.random() < 0.2)
        drums.notes.append(Note(beat, 0.25, 36 if kick else 38, _velocity(rng, 105)))
        drums.notes += [
            Note(beat + h, 0.2, 42, _velocity(rng, 70)) for h in np.arange(0.0, 1.0, hats)
        ]
    return drums


def bass_part(rng: Rng, chords: list[Chord]) -> Part:
    program = int(rng.choice(BASS_PROGRAMS))
    step = float(rng.choice([0.5, 1.0, 2.0]))
    notes: list[Note] = []
    for chord in chords:
        root = voicing(chord, 28, 1)[0]
        fifth = root + 7
        for k in range(round(chord.length / step)):
            pitch = fifth if k % 4 == 3 else root
            notes.append(Note(chord.start + k * step, step * 0.9, pitch, _velocity(rng, 100)))
    return Part(program, notes, channel=2)


def generated(
    rng: Rng, seconds: float, bpm: float | None = None, key: Key | None = None
) -> Arrangement:
    """A song from a chord progression: piano comping against 1-3 other instruments.

    `bpm` and `key` fix the tempo and key (the song facts benchmark); else they are drawn.
    """
    drawn_bpm = float(rng.uniform(70, 160))
    bpm = drawn_bpm if bpm is None else bpm
    beats = np.ceil(seconds * bpm / 60) + 1
    chords, scale = progression(rng, beats, float(rng.choice([2.0, 4.0, 4.0, 8.0])), key)
    song = Arrangement(bpm, beats, tonic=scale[0] % 12, minor=scale[2] - scale[0] == 3,
                       opening=scale.index(chords[0].pitches[0] - 48), chords=chords)
    if rng.random() >= NO_PIANO_SHARE:
        song.piano.append(_piano_part(rng, chords, scale))
    count = int(rng.integers(1, 4))
    song.others = [_other_part(rng, chords, scale, channel=3 + k) for k in range(count)]
    song.drums, song.bass = drum_part(rng, beats), bass_part(rng, chords)
    return song


def chorale(rng: Rng, seconds: float) -> Arrangement:
    """A window of a Bach work from music21's corpus, its voices dealt to piano and others."""
    from music21 import corpus  # train-only dependency, imported where it is needed

    paths = sorted(corpus.getComposer("bach"))
    score = corpus.parse(paths[int(rng.integers(len(paths)))])
    bpm = float(rng.uniform(60, 130))
    beats = float(np.ceil(seconds * bpm / 60) + 1)
    voices = [_voice_notes(part) for part in score.parts]
    voices = [v for v in voices if v]
    total = max(n.start + n.length for v in voices for n in v)
    offset = float(rng.uniform(0, max(0.0, total - beats)))
    shift = int(rng.integers(-5, 7))
    window = [
        [
            Note(n.start - offset, n.length, n.pitch + shift, _velocity(rng, 80))
            for n in v
            if offset <= n.start < offset + beats
        ]
        for v in voices
    ]
    song = Arrangement(bpm, beats)
    to_piano = rng.random(len(window)) < 0.5
    if rng.random() < NO_PIANO_SHARE:
        to_piano[:] = False
    elif not to_piano.any():
        to_piano[int(rng.integers(len(window)))] = True
    piano_notes = [n for v, p in zip(window, to_piano, strict=True) if p for n in v]
    if piano_notes:
        song.piano.append(Part(int(rng.choice(PIANO_PROGRAMS)), piano_notes, channel=0))
    for k, (voice, is_piano) in enumerate(zip(window, to_piano, strict=True)):
        if not is_piano or rng.random() < 0.3:  # sometimes another instrument doubles piano
            family = list(OTHER_FAMILIES)[int(rng.integers(len(OTHER_FAMILIES)))]
            program = int(rng.choice(OTHER_FAMILIES[family]))
            song.others.append(Part(program, voice, channel=3 + k))
    return song


def _voice_notes(part: object) -> list[Note]:
    """Notes of one music21 part, in quarter notes from its start."""
    out: list[Note] = []
    for element in part.flatten().notes:  # type: ignore[attr-defined]
        length = float(element.duration.quarterLength)
        for pitch in element.pitches:
            if length > 0:
                out.append(Note(float(element.offset), length, int(pitch.midi)))
    return out


def arrangement(rng: Rng, seconds: float, corpus_share: float) -> Arrangement:
    """A generated song, or with probability `corpus_share` a corpus window."""
    if rng.random() < corpus_share:
        return chorale(rng, seconds)
    return generated(rng, seconds)
