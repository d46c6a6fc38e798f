"""The piano model and the 5-stem path: exact identity, shapes, streaming, quality, errors."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

from separation import OutputFormat, Separator, StemPreset, decode, model_files, piano, synth
from separation.dsp import Float
from separation.errors import ModelNotInstalledError
from separation.piano import HOP, PianoModel, PianoStream
from separation.runtime import Precision, RuntimeConfig

SECONDS = 7.0
BPM = 100.0


@pytest.fixture(scope="module")
def model() -> PianoModel:
    return PianoModel(
        model_files.model_dir() / model_files.PIANO_MODEL_NAME,
        RuntimeConfig(precision=Precision.F32, threads=1),  # exact arithmetic: streaming = one pass
    )


@pytest.fixture(scope="module")
def noise() -> Float:
    """Ten seconds of stereo noise: enough for several streaming windows."""
    rng = np.random.default_rng(5)
    return (rng.standard_normal((2, 441_000)) * 0.1).astype(np.float32)


def piano_song() -> dict[str, Float]:
    """A 7 s song on the held-out soundfont: vocals, drums, bass, piano, strings and guitar."""
    chords = [(45, (57, 60, 64)), (41, (53, 57, 60)), (48, (55, 60, 64)), (43, (55, 59, 62))]
    grand, strings, guitar = synth.Part(0, channel=0), synth.Part(48, channel=3), synth.Part(25)
    guitar.channel = 4
    parts = synth.demo_parts(4)
    for bar, (_, triad) in enumerate(chords * 2):
        t = bar * 4.0
        arpeggio = [triad[0] - 12, triad[1] - 12, triad[2] - 12, triad[0], triad[1], triad[2]]
        grand.notes += [synth.Note(t + k * 0.5, 1.0, arpeggio[k % 6], 90) for k in range(8)]
        strings.notes += [synth.Note(t, 3.9, p + 12, 60) for p in triad]
        guitar.notes += [synth.Note(t + b, 0.4, p, 70) for b in (0.5, 1.5, 2.5, 3.5) for p in triad]
    font = synth.find_soundfont("TimGM6mb.sf2")
    length = round(SECONDS * 44_100)

    def render(*song: synth.Part) -> Float:
        out: Float = np.sum([synth.render_part(p, length, BPM, font) for p in song], axis=0)
        return out

    return {
        "vocals": speech(length),
        "drums": render(parts["drums"]),
        "bass": render(parts["bass"]),
        "piano": render(grand),
        "rest": render(strings, guitar),
    }


def speech(length: int) -> Float:
    """The demo's spoken line, looped: something for the vocals stem to take."""
    with tempfile.TemporaryDirectory() as tmp:
        voice = decode(synth.speak(synth.BARS_TEXT, Path(tmp) / "voice.wav"))
    return synth.fit(np.tile(voice, length // voice.shape[1] + 1) * np.float32(0.6), length)


@pytest.fixture(scope="module")
def song() -> dict[str, Float]:
    return piano_song()


def four_of(noise: Float) -> dict[str, Float]:
    """Four different stems from one noise: each scaled and shifted its own way."""
    return {name: np.roll(noise, 997 * k, axis=-1) * np.float32(0.5 + k / 4)
            for k, name in enumerate(piano.FOUR_STEMS)}


def test_five_stems_add_up_to_the_four(model: PianoModel, noise: Float) -> None:
    four = four_of(noise)
    five = piano.split(four, model.takes(four), model.sources)
    assert list(five) == list(StemPreset.FIVE_STEMS.stems)
    np.testing.assert_allclose(sum(five.values()), sum(four.values()), atol=1e-5)
    for name in set(piano.FOUR_STEMS) - set(model.sources):  # a stem not read is untouched
        np.testing.assert_array_equal(five[name], four[name])
    assert np.abs(five["piano"]).max() > 0  # a mask, not a pass-through of silence


def test_the_model_reads_known_stems(model: PianoModel) -> None:
    assert model.sources and set(model.sources) <= set(piano.FOUR_STEMS)
    assert len(set(model.sources)) == len(model.sources)


@pytest.mark.parametrize("length", [1, 100, HOP * 3 + 7, 44_100, 262_144, 300_001])
def test_piano_has_the_length_of_the_stems(model: PianoModel, noise: Float, length: int) -> None:
    out = model.piano(four_of(noise[:, :length]))
    assert out.shape == (2, length)
    assert out.dtype == np.float32


def test_mask_is_in_unit_range_and_keeps_shape(model: PianoModel, noise: Float) -> None:
    from separation import dsp

    stacked = model.stack(four_of(noise[:, :44_100]))
    z = dsp.stft(stacked.reshape(-1, stacked.shape[-1]), piano.N_FFT, HOP)
    magnitude = np.abs(z).astype(np.float32)
    mask = model.mask(magnitude)
    assert mask.shape == magnitude.shape == (2 * len(model.sources), piano.BINS, z.shape[-1])
    assert mask.min() >= 0.0 and mask.max() <= 1.0


def test_streaming_matches_one_pass(model: PianoModel, noise: Float) -> None:
    """Odd block sizes through the stream give the samples of a single whole-clip window."""
    stacked = model.stack(four_of(noise))
    stream, out, position = PianoStream(model), [], 0
    for size in (1, 5_000, 123_457, 44_100, 200_000, 441_000):
        out += stream.push(stacked[..., position : position + size])
        position += size
    out += stream.finish()
    streamed = np.concatenate(out, axis=-1)
    assert streamed.shape == stacked.shape
    np.testing.assert_allclose(streamed, model.takes_of_window(stacked), atol=1e-5)


def test_five_stem_blocks_are_aligned(model: PianoModel, noise: Float) -> None:
    four = four_of(noise)
    blocks = [{name: samples[:, a : a + 70_000] for name, samples in four.items()}
              for a in range(0, noise.shape[-1], 70_000)]
    out = list(piano.five_stems(blocks, model))
    for block in out:
        assert list(block) == list(StemPreset.FIVE_STEMS.stems)
        assert len({samples.shape for samples in block.values()}) == 1
    joined = {name: np.concatenate([b[name] for b in out], axis=-1) for name in out[0]}
    np.testing.assert_allclose(joined["piano"], model.piano(four), atol=1e-5)
    np.testing.assert_allclose(sum(joined.values()), sum(four.values()), atol=1e-5)


def test_five_stems_beat_other_as_piano(separator: Separator, song: dict[str, Float]) -> None:
    """Mixture -> 4-stem model -> piano model, on a soundfont the piano model never heard."""
    mix = song["vocals"] + song["drums"] + song["bass"] + song["piano"] + song["rest"]
    four = separator.separate(mix, StemPreset.FOUR_STEMS)
    five = separator.separate(mix, StemPreset.FIVE_STEMS)
    assert list(five) == list(StemPreset.FIVE_STEMS.stems)
    assert all(s.shape == mix.shape for s in five.values())
    np.testing.assert_allclose(sum(five.values()), sum(four.values()), atol=1e-5)
    ours = synth.sdr(song["piano"], five["piano"])
    baseline = synth.sdr(song["piano"], four["other"])
    print(f"piano SDR {ours:.2f} dB, other as piano {baseline:.2f} dB")
    assert ours > baseline + 2.0, (ours, baseline)
    assert synth.sdr(song["rest"], five["other"]) > synth.sdr(song["rest"], four["other"])


def test_five_stem_files(separator: Separator, demo_wav: Path, tmp_path: Path) -> None:
    paths = separator.separate_file(demo_wav, tmp_path, StemPreset.FIVE_STEMS, OutputFormat.WAV)
    assert sorted(paths) == sorted(StemPreset.FIVE_STEMS.stems)
    lengths = {decode(path).shape for path in paths.values()}
    assert lengths == {decode(demo_wav).shape}


def test_missing_piano_model_is_a_clear_error(tmp_path: Path) -> None:
    """A model folder with the 4-stem model only: 4 stems work, 5 stems say what is missing."""
    for name in (model_files.HTDEMUCS.name, model_files.HTDEMUCS_PARTS):
        (tmp_path / name).symlink_to(model_files.model_dir() / name)
    engine = Separator(tmp_path, RuntimeConfig(threads=1))
    engine.check(StemPreset.FOUR_STEMS)
    with pytest.raises(ModelNotInstalledError, match="piano model not installed"):
        engine.check(StemPreset.FIVE_STEMS)
    with pytest.raises(ModelNotInstalledError):
        next(engine.stream(np.zeros((2, 1000), np.float32), StemPreset.FIVE_STEMS))


def test_installed_piano_model_passes_the_check(separator: Separator) -> None:
    separator.check(StemPreset.FIVE_STEMS)
