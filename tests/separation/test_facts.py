"""Song facts: BS.1770 loudness, and tempo and key of rendered songs whose truth is known."""

from __future__ import annotations

import numpy as np
import pytest

from separation.dsp import Float
from separation.essentia_lib import standard
from separation.fact_line import line
from separation.facts import FactsCollector, song_facts
from separation.htdemucs import SAMPLE_RATE
from separation.loudness import LoudnessMeter, integrated_loudness
from support.songs import song_stems

FOUR = ("vocals", "drums", "bass", "other")


def sine(seconds: float, amplitude: float) -> Float:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)


def test_a_minus_20_dbfs_sine_reads_minus_20_lufs() -> None:
    """A 1 kHz sine of amplitude 0.1 (−20 dBFS) has a mean square of 0.005 (−23.01 dB) per
    channel; K-weighting adds +0.69 dB at 1 kHz, which BS.1770's −0.691 takes back out, and
    two channels add +3.01 dB: −20.00 LUFS in stereo, −23.01 LUFS in one channel."""
    tone = sine(10, 0.1)
    assert integrated_loudness(np.stack([tone, tone]), SAMPLE_RATE) == pytest.approx(-20.0, abs=0.1)
    one = integrated_loudness(np.stack([tone, np.zeros_like(tone)]), SAMPLE_RATE)
    assert one == pytest.approx(-23.01, abs=0.1)


def test_the_meter_streams_and_gates_as_the_reference_does() -> None:
    """Blocks of any size give the whole signal's value; gating matches essentia's meter."""
    rng = np.random.default_rng(3)
    audio = (rng.standard_normal((2, 40 * SAMPLE_RATE)) * 0.05).astype(np.float32)
    audio[:, : 15 * SAMPLE_RATE] *= 0.02  # a quiet intro: the relative gate drops it
    reference = float(standard.LoudnessEBUR128(sampleRate=SAMPLE_RATE)(audio.T.copy())[2])
    meter = LoudnessMeter(2, 2, SAMPLE_RATE)
    position = 0
    for size in rng.integers(1, 200_000, size=1000):
        block = audio[:, position : position + size]
        meter.add(np.stack([block, block * np.float32(0.5)]))
        position += int(size)
        if position >= audio.shape[1]:
            break
    whole, half = meter.integrated()
    assert whole == pytest.approx(reference, abs=0.01)
    assert half == pytest.approx(reference - 6.02, abs=0.01)
    assert integrated_loudness(audio, SAMPLE_RATE) == pytest.approx(whole, abs=1e-6)


@pytest.mark.parametrize(("index", "bpm", "key"), [(4, 116.7, "E major"), (41, 100.7, "F minor")])
def test_rendered_songs_give_their_tempo_and_key(index: int, bpm: float, key: str) -> None:
    """30 s songs of the benchmark on their true stems. Calibration: the beat trackers agree
    at 0.73 and 0.76 (floor 3.0 / 5.32 = 0.56), the keys correlate 0.88 and 0.90 (floor 0.65)."""
    song, stems = song_stems(index, 30.0, voice=False)
    assert (song.bpm, song.tonic, song.minor) == (bpm, *{"E major": (4, False),
                                                         "F minor": (5, True)}[key])
    four = {"vocals": stems["vocals"], "drums": stems["drums"], "bass": stems["bass"],
            "other": stems["piano"] + stems["other"]}
    facts = song_facts(np.sum(list(four.values()), axis=0), four)
    assert facts.tempo is not None and facts.tempo.bpm == pytest.approx(bpm, rel=0.02)
    assert facts.tempo.confidence >= 3.0 / 5.32
    assert facts.key is not None and facts.key.name == key
    assert facts.loudness is not None and -40 < facts.loudness < 0
    assert facts.stem_loudness["vocals"] is None  # a silent stem has no loudness
    assert all(facts.stem_loudness[s] is not None for s in ("drums", "bass", "other"))


@pytest.mark.parametrize(("index", "bpm"), [(0, 60.0), (21, 177.4)])
def test_the_beat_is_where_kick_and_snare_land(index: int, bpm: float) -> None:
    """The tracker alone says 119.9 for the 60 BPM song (its hi-hat plays eighths) and 88.7 for
    the 177.4 BPM one; kick and snare settle the octave."""
    _, stems = song_stems(index, 30.0, voice=False)
    facts = song_facts(np.sum(list(stems.values()), axis=0), {
        "drums": stems["drums"], "other": stems["bass"] + stems["piano"] + stems["other"]})
    assert facts.tempo is not None and facts.tempo.bpm == pytest.approx(bpm, rel=0.02)


def noise(seconds: float, seed: int) -> Float:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((2, round(seconds * SAMPLE_RATE))) * 0.1).astype(np.float32)


@pytest.mark.parametrize("case", ["silence", "one second", "noise 10 s", "noise 30 s"])
def test_silence_short_clips_and_noise_give_no_tempo_or_key(case: str) -> None:
    """No error, no invented facts; loudness is still exact where there is sound."""
    _, stems = song_stems(4, 30.0, voice=False)
    mix = {"silence": np.zeros((2, 20 * SAMPLE_RATE), np.float32),
           "one second": np.sum(list(stems.values()), axis=0)[:, :SAMPLE_RATE],
           "noise 10 s": noise(10, 1), "noise 30 s": noise(30, 2)}[case]
    facts = song_facts(mix, {s: mix * np.float32(0.25) for s in FOUR})
    assert facts.tempo is None and facts.key is None
    wire = facts.wire()
    if case == "silence":
        assert wire["loudness"] == {"mix": None, "stems": dict.fromkeys(FOUR)}
        assert line(wire) == "tempo unclear · key unclear · silent"
    else:
        assert facts.loudness is not None
        assert line(wire).startswith("tempo unclear · key unclear · −")


def test_the_line_reads_as_musicians_write() -> None:
    wire = {"tempo": {"bpm": 117.8, "confidence": 0.8},
            "key": {"name": "A♭ major", "tonic": 8, "mode": "major", "confidence": 0.9},
            "loudness": {"mix": -9.81, "stems": {}}}
    assert line(wire) == "118 BPM · A♭ major · −9.8 LUFS"


def test_two_stems_take_the_beat_from_the_accompaniment() -> None:
    """Without a drums stem the tempo comes from `other`, which holds the drums."""
    _, stems = song_stems(4, 30.0, voice=False)
    mix: Float = np.sum(list(stems.values()), axis=0)
    collector = FactsCollector(("vocals", "other"))
    collector.begin(mix)
    for start in range(0, mix.shape[1], 100_000):  # blocks as the engine streams them
        collector.add({"vocals": stems["vocals"][:, start : start + 100_000],
                       "other": mix[:, start : start + 100_000]})
    facts = collector.facts()
    assert facts.tempo is not None and facts.tempo.bpm == pytest.approx(116.7, rel=0.02)
    assert facts.key is not None and facts.key.name == "E major"
