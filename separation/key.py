"""The key of a song from its harmonic stems: essentia's key profile for the scale, the chord
sequence to choose among the keys the profile confuses (its relative, a fifth away), noise
refused."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from separation.chords import NO_CHORD, Chord, chroma, triad_fit
from separation.dsp import Float
from separation.essentia_lib import standard
from separation.htdemucs import SAMPLE_RATE

KEY_DECIMATION = 4  # the key is read from 25 Hz-3.5 kHz: 11 kHz keeps it, at a quarter the cost
# essentia's key profiles measured on 48 rendered songs' true stems: noland, edma, shaath,
# bgate and the rest within 30-33 right; noland kept it with the bass in or out (31, 32).
KEY_PROFILE = "noland"
# The key's correlation with its profile: the same songs 0.70 or more, white noise 0.53-0.61.
# Noise can correlate better by chance (0.76 once with another profile), so the sound must also
# be tonal: the spectral flatness of 100 Hz-3.5 kHz (median over frames) is 0.56 for white
# noise and at most 0.03 for the songs.
KEY_STRENGTH_MIN = 0.65
FLATNESS_MAX = 0.2
FLATNESS_FRAME = 4096
MAJOR_NAMES = ("C", "D♭", "D", "E♭", "E", "F", "F♯", "G", "A♭", "A", "B♭", "B")
MINOR_NAMES = ("C", "C♯", "D", "E♭", "E", "F", "F♯", "G", "G♯", "A", "B♭", "B")
# Choosing by the chord sequence (`chosen_key`): a key's score is these weights times its terms
# (`key_terms`). Fitted (a conditional logit, L2 0.01) on the 48 songs of
# benchmarks/song_facts.py's generator, true stems (`benchmarks.chords --set generator --songs
# 48 --fit` gives them back); measured on two sets written otherwise (--set other, --set rock),
# see the README's Song facts.
KEY_WEIGHTS = {
    "tonic": 0.47,  # share of chord time on the tonic chord
    "diatonic": 1.68,  # share of chord time on the key's own chords (minor: v and V both)
    "cadence": 1.78,  # share of chord changes that land on the tonic from V, V7 or IV
    "first": 1.57,  # the first chord is the tonic
    "last": 0.55,  # the last chord is the tonic
    "scale": 1.85,  # the profile's scale: its key or its relative
}
# Fewer chord segments than this (a short clip, a drone) say too little: the profile's key
# and its relative by the chord frames, as before the chord sequence (`home_key`).
MIN_SEQUENCE = 4
MAJOR_CHORDS = frozenset({(0, False), (2, True), (4, True), (5, False), (7, False), (9, True)})
MINOR_CHORDS = frozenset({(0, True), (3, False), (5, True), (7, True), (7, False), (8, False),
                          (10, False)})
PITCH_CLASSES = {"C": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "F": 5, "F#": 6,
                 "Gb": 6, "G": 7, "G#": 8, "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11}


@dataclass(frozen=True, slots=True)
class Key:
    tonic: int  # pitch class, 0 = C
    minor: bool
    confidence: float  # 0-1: correlation of the song's pitch profile with the key's

    @property
    def name(self) -> str:
        """As musicians write it: `A♭ major`, `F♯ minor`."""
        names = MINOR_NAMES if self.minor else MAJOR_NAMES
        return f"{names[self.tonic]} {'minor' if self.minor else 'major'}"


def flatness(mono: Float, rate: float) -> float:
    """Median spectral flatness of 100 Hz-3.5 kHz over the audible frames: 1 flat, 0 tonal."""
    frames = len(mono) // FLATNESS_FRAME
    if frames == 0:
        return 1.0
    shaped = mono[: frames * FLATNESS_FRAME].reshape(frames, FLATNESS_FRAME)
    power = np.abs(np.fft.rfft(shaped * np.hanning(FLATNESS_FRAME), axis=1)) ** 2
    freqs = np.fft.rfftfreq(FLATNESS_FRAME, 1 / rate)
    power = power[:, (freqs >= 100) & (freqs <= 3500)] + 1e-12
    mean = power.mean(axis=1)
    audible = mean > mean.max() * 1e-3
    geometric = np.exp(np.log(power[audible]).mean(axis=1))
    return float(np.median(geometric / mean[audible]))


def tonal(mono: Float) -> bool:
    """Whether a mono copy at 11 kHz sounds of pitches rather than noise (`FLATNESS_MAX`)."""
    return flatness(mono, SAMPLE_RATE / KEY_DECIMATION) <= FLATNESS_MAX


def estimate_key(mono: Float, chords: Sequence[Chord] | None = None) -> Key | None:
    """The key of a mono copy at 11 kHz (`KEY_DECIMATION`); None for noise or no clear key.
    With the song's `chords` (`estimate_chords`), chosen among the profile's neighbours by
    them (`chosen_key`); without, or too few, the profile's key or its relative."""
    found = profile_key(mono)
    if found is None:
        return None
    sounding = [c for c in chords or () if c.root != NO_CHORD]
    if len(sounding) >= MIN_SEQUENCE:
        return chosen_key(found, sounding)
    signal = np.ascontiguousarray(mono, dtype=np.float32)
    return home_key(found, chord_time(chroma_frames(signal, SAMPLE_RATE / KEY_DECIMATION)))


def profile_key(mono: Float) -> Key | None:
    """essentia's key profile alone (`KEY_PROFILE`) on a mono copy at 11 kHz; None for noise or
    a correlation under `KEY_STRENGTH_MIN`."""
    if not tonal(mono):
        return None
    signal = np.ascontiguousarray(mono, dtype=np.float32)
    rate = SAMPLE_RATE / KEY_DECIMATION
    name, scale, strength = standard.KeyExtractor(profileType=KEY_PROFILE, sampleRate=rate)(signal)
    if strength < KEY_STRENGTH_MIN or name not in PITCH_CLASSES:
        return None
    return Key(PITCH_CLASSES[name], scale == "minor", round(float(strength), 2))


def relative(key: Key) -> Key:
    """The key with the same notes and the other mode: C major and A minor."""
    return Key((key.tonic + (3 if key.minor else 9)) % 12, not key.minor, key.confidence)


def candidates(key: Key) -> list[Key]:
    """The keys a pitch profile confuses with `key`: its relative (same notes), the keys a fifth
    above and below (one note apart) and their relatives, and its parallel (same tonic)."""
    out = [key, Key(key.tonic, not key.minor, key.confidence)]
    for base in (key, relative(key)):
        out += [Key((base.tonic + step) % 12, base.minor, key.confidence) for step in (0, 7, 5)]
    return list(dict.fromkeys(out))


def key_terms(key: Key, chords: Sequence[Chord], profile: Key) -> dict[str, float]:
    """What the chord sequence says for `key` (`KEY_WEIGHTS`' terms, each 0-1). `chords`: the
    sounding segments in order; `profile`: the key the pitch profile found."""
    tonic = (key.tonic, key.minor)
    fifth, fourth = (key.tonic + 7) % 12, (key.tonic + 5) % 12
    # V (V7 counts as V) or IV to I; in minor V or v, and iv, to i
    leading = {(fifth, False), (fourth, key.minor)} | ({(fifth, True)} if key.minor else set())
    own = MINOR_CHORDS if key.minor else MAJOR_CHORDS
    total = sum(c.end - c.start for c in chords)
    labels = [(c.root, c.minor) for c in chords]
    share: dict[tuple[int, bool], float] = {}
    for chord, label in zip(chords, labels, strict=True):
        share[label] = share.get(label, 0.0) + (chord.end - chord.start) / max(total, 1e-9)
    changes = list(itertools.pairwise(labels))
    landings = sum(1 for before, after in changes if after == tonic and before in leading)
    return {
        "tonic": share.get(tonic, 0.0),
        "diatonic": sum(v for (root, minor), v in share.items()
                        if ((root - key.tonic) % 12, minor) in own),
        "cadence": landings / max(len(changes), 1),
        "first": float(bool(labels) and labels[0] == tonic),
        "last": float(bool(labels) and labels[-1] == tonic),
        "scale": float(key in (profile, relative(profile))),
    }


def key_score(key: Key, chords: Sequence[Chord], profile: Key) -> float:
    """`KEY_WEIGHTS` times `key_terms`."""
    terms = key_terms(key, chords, profile)
    return sum(KEY_WEIGHTS[name] * value for name, value in terms.items())


def chosen_key(profile: Key, chords: Sequence[Chord]) -> Key:
    """Of the profile's key and its `candidates`, the one the chord sequence scores highest
    (`KEY_WEIGHTS`); a tie keeps the earlier candidate, the profile's own key first.

    A pitch profile weighs notes: a song in natural minor has exactly its relative major's
    notes, and one whose IV chord sounds long leans a fifth down. The chords tell: the key is
    the chord the music rests on and returns to (V-I, IV-I), the one it often opens and ends
    on, and the key whose chords the song uses. The confidence stays the profile's."""
    keys = candidates(profile)
    scores = [key_score(key, chords, profile) for key in keys]
    return keys[int(np.argmax(scores))]


def home_key(key: Key, chords: dict[tuple[int, bool], float]) -> Key:
    """Of `key` and its relative, the one whose tonic and dominant chords sound longer.

    A pitch profile weighs notes, and a song in natural minor (no leading tone) has exactly
    the notes of its relative major, so the profile often reads A minor as C major. The chords
    tell them apart: a key is the chord the music rests on (its tonic) and the one that leads
    back to it (the dominant, V-I), the two primary triads of tonal harmony. A song in A minor
    sits on Am and Em or E, hardly on C and G; one in C major the other way round. Ties keep
    the profile's reading. The confidence stays the profile's: both keys share its notes.
    """
    other = relative(key)
    return other if _tonic_and_dominant(other, chords) > _tonic_and_dominant(key, chords) else key


def _tonic_and_dominant(key: Key, chords: dict[tuple[int, bool], float]) -> float:
    fifth = (key.tonic + 7) % 12
    # minor keys take the dominant major (harmonic minor's V) or minor (natural minor's v)
    dominant = chords.get((fifth, False), 0.0) + (chords.get((fifth, True), 0.0) if key.minor
                                                  else 0.0)
    return chords.get((key.tonic, key.minor), 0.0) + dominant


def chroma_frames(signal: Float, rate: float) -> Float:
    """One 12-bin pitch-class profile (HPCP, index 0 = C) per audible chord frame."""
    return chroma(signal, rate).audible


def chord_time(frames: Float) -> dict[tuple[int, bool], float]:
    """Share of the frames whose closest chord shape is each triad, as (root, minor)."""
    if len(frames) == 0:
        return {}
    shares: dict[tuple[int, bool], float] = {}
    for best in np.argmax(triad_fit(frames), axis=1):
        label = (int(best) % 12, bool(best >= 12))
        shares[label] = shares.get(label, 0.0) + 1 / len(frames)
    return shares
