"""The key: the profile finds the scale, the chords settle major against its relative minor."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.song_facts import song_stems
from separation import synth
from separation.dsp import Float
from separation.essentia_lib import standard
from separation.htdemucs import SAMPLE_RATE
from separation.key import (
    KEY_DECIMATION,
    KEY_PROFILE,
    KEY_STRENGTH_MIN,
    Key,
    chord_time,
    chroma_frames,
    estimate_key,
    home_key,
)

RATE = SAMPLE_RATE / KEY_DECIMATION
A_MINOR, C_MAJOR = (9, True), (0, False)


def profile(pitch_classes: list[int]) -> Float:
    row = np.zeros(12, dtype=np.float32)
    row[[p % 12 for p in pitch_classes]] = 1.0
    return row


def decimated(stereo: Float) -> Float:
    """As the facts collector keeps the harmonic stems: mono, a 4-tap mean, 11 kHz."""
    mono = stereo.mean(axis=0)
    whole = len(mono) // KEY_DECIMATION * KEY_DECIMATION
    return mono[:whole].reshape(-1, KEY_DECIMATION).mean(axis=1).astype(np.float32)


def test_a_seventh_chord_counts_for_its_root() -> None:
    """Am7 holds the C major triad and Cmaj7 the E minor one; each is read as its own root."""
    frames = np.stack([profile([9, 0, 4, 7])] * 6 + [profile([0, 4, 7, 11])] * 3
                      + [profile([7, 11, 2])] * 3)
    assert chord_time(frames) == pytest.approx({A_MINOR: 0.5, C_MAJOR: 0.25, (7, False): 0.25})
    assert chord_time(np.zeros((0, 12), dtype=np.float32)) == {}


def test_the_chords_choose_between_a_key_and_its_relative() -> None:
    """Same notes, other home: A minor rests on Am and E/Em, C major on C and G."""
    c_major = Key(0, False, 0.8)
    minor_chords = {A_MINOR: 0.4, (2, True): 0.2, (4, True): 0.2, (4, False): 0.1, C_MAJOR: 0.1}
    assert home_key(c_major, minor_chords) == Key(9, True, 0.8)
    # I vi IV V: the relative minor's tonic sounds as long as the major's, the dominant decides
    pop = {C_MAJOR: 0.25, A_MINOR: 0.25, (5, False): 0.25, (7, False): 0.25}
    assert home_key(c_major, pop) == c_major
    assert home_key(Key(9, True, 0.8), pop) == c_major
    assert home_key(c_major, {}) == c_major  # no chords: the profile's reading stands


def test_rendered_seventh_chords_are_heard_as_their_roots() -> None:
    """Am7 Dm7 Em7 Am7 on a piano over a bass, a bar each: the frames read i, iv and v (shares
    0.49 / 0.25 / 0.25 measured; floors 0.4 / 0.2 / 0.2) and the key A minor."""
    bpm, bars = 100.0, 8
    chords = [(9, 3, 7, 10), (2, 3, 7, 10), (4, 3, 7, 10), (9, 3, 7, 10)]
    piano, bass = [], []
    for bar in range(bars):
        root, *intervals = chords[bar % 4]
        for beat in range(4):
            start = 4 * bar + beat
            piano += [synth.Note(start, 0.9, 57 + (root - 9) % 12 + i, 80) for i in (0, *intervals)]
            bass.append(synth.Note(start, 0.9, 33 + (root - 9) % 12, 90))
    length = round(bars * 4 * 60 / bpm * SAMPLE_RATE)
    mix = (synth.render_part(synth.Part(0, piano, 0), length, bpm)
           + synth.render_part(synth.Part(33, bass, 2), length, bpm))
    mono = decimated(mix)
    shares = chord_time(chroma_frames(mono, RATE))
    assert shares.get(A_MINOR, 0) >= 0.4
    assert shares.get((2, True), 0) >= 0.2 and shares.get((4, True), 0) >= 0.2
    key = estimate_key(mono)
    assert key is not None and key.name == "A minor" and key.confidence >= KEY_STRENGTH_MIN


@pytest.mark.parametrize(("index", "profile_reads", "key"), [
    (38, "F major", "D minor"), (42, "A major", "F♯ minor"), (32, "A♭ major", "A♭ major")])
def test_benchmark_songs_find_their_home(index: int, profile_reads: str, key: str) -> None:
    """True stems of the benchmark's natural-minor songs that the profile alone reads as the
    relative major, and a major song whose relative minor chord sounds too. Tonic and dominant
    chords measured: 38: 0.54 D minor / 0.14 F major, 42: 0.62 / 0.08, 32: 0.46 A♭ major /
    0.28 F minor; the profile's correlation 0.65 or more (the floor for any key)."""
    _, stems = song_stems(index, 30.0, voice=False)
    mono = decimated(stems["bass"] + stems["piano"] + stems["other"])
    name, scale, _ = standard.KeyExtractor(profileType=KEY_PROFILE, sampleRate=RATE)(mono)
    assert f"{name.replace('b', '♭')} {scale}" == profile_reads
    found = estimate_key(mono)
    assert found is not None and found.name == key and found.confidence >= KEY_STRENGTH_MIN
