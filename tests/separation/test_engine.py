"""The real 4-stem model on a rendered clip whose stems are known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from separation import OutputFormat, Separator, StemPreset, decode, encode, synth
from separation.apply import DEFAULT_OVERLAP, ChunkPlan
from separation.dsp import Float
from separation.errors import AudioDecodeError
from separation.htdemucs import SEGMENT
from separation.runtime import RuntimeConfig

# Calibrated on the 7 s demo clip (FluidSynth drums, bass and organ, espeak-ng voice):
# measured 14.1 / 9.9 / 7.4 / 1.6 dB (vocals / drums / bass / other); the mixture itself
# scores 1.7 / -11.0 / -4.7 / -11.4. The floors leave room for CPU rounding differences.
SDR_FLOOR = {"vocals": 11.0, "drums": 7.0, "bass": 5.0, "other": 0.0}


@pytest.fixture(scope="module")
def four(separator: Separator, demo_mix: Float) -> dict[str, Float]:
    return separator.separate(demo_mix, StemPreset.FOUR_STEMS)


def test_each_stem_is_separated_well(four: dict[str, Float], demo_stems: dict[str, Float]) -> None:
    mix = np.sum(list(demo_stems.values()), axis=0)
    for stem, floor in SDR_FLOOR.items():
        score = synth.sdr(demo_stems[stem], four[stem])
        # the mixture itself as the estimate is what "no separation" scores
        unseparated = synth.sdr(demo_stems[stem], mix)
        assert score > floor, f"{stem}: {score:.1f} dB"
        assert score > unseparated + 3, f"{stem}: {score:.1f} dB vs mix {unseparated:.1f} dB"


def test_stems_have_the_input_length(four: dict[str, Float], demo_mix: Float) -> None:
    assert list(four) == ["vocals", "drums", "bass", "other"]
    for samples in four.values():
        assert samples.shape == demo_mix.shape
        assert samples.dtype == np.float32


def test_two_stems_are_vocals_and_the_sum_of_the_rest(
    separator: Separator, demo_mix: Float, four: dict[str, Float]
) -> None:
    two = separator.separate(demo_mix, StemPreset.TWO_STEMS)
    assert list(two) == ["vocals", "other"]
    assert np.allclose(two["vocals"], four["vocals"], atol=1e-6)
    accompaniment = four["drums"] + four["bass"] + four["other"]
    assert np.allclose(two["other"], accompaniment, atol=1e-6)


def test_silence_gives_silent_stems(separator: Separator) -> None:
    silent = np.zeros((2, 3 * 44_100), dtype=np.float32)
    stems = separator.separate(silent, StemPreset.FOUR_STEMS)
    for samples in stems.values():
        assert samples.shape == silent.shape
        assert np.abs(samples).max() < 1e-6


def test_separate_file_streams_the_same_stems_at_the_exact_length(
    separator: Separator, demo_mix: Float, four: dict[str, Float], tmp_path: Path
) -> None:
    # an odd length: the last chunk is short and the last block is not a whole stride
    odd = demo_mix[:, :300_001]
    source = encode(tmp_path / "odd.wav", odd, OutputFormat.WAV_FLOAT)
    progress: list[tuple[int, int]] = []
    paths = separator.separate_file(
        source,
        tmp_path / "stems",
        StemPreset.FOUR_STEMS,
        OutputFormat.WAV_FLOAT,
        progress=lambda done, total: progress.append((done, total)),
    )
    assert sorted(p.name for p in (tmp_path / "stems").iterdir()) == [
        "bass.wav",
        "drums.wav",
        "other.wav",
        "vocals.wav",
    ]
    chunks = ChunkPlan(odd.shape[-1], SEGMENT, DEFAULT_OVERLAP).total
    assert progress[0] == (0, chunks) and progress[-1] == (chunks, chunks)
    stems = {stem: decode(path) for stem, path in paths.items()}
    for samples in stems.values():
        assert samples.shape == odd.shape
    # the file path is the streaming path; away from the cut it agrees with the whole-clip run
    assert np.abs(stems["vocals"][:, :200_000] - four["vocals"][:, :200_000]).max() < 0.05


@pytest.mark.parametrize(("overlap", "chunks"), [(0.25, 3), (0.1, 2)])
def test_the_overlap_setting_decides_how_many_chunks_run(
    demo_mix: Float, overlap: float, chunks: int
) -> None:
    mix = np.tile(demo_mix, 2)[:, :600_000]  # 13.6 s
    progress: list[tuple[int, int]] = []
    separator = Separator(config=RuntimeConfig(overlap=overlap))
    stems = separator.separate(mix, StemPreset.TWO_STEMS, lambda d, t: progress.append((d, t)))
    assert progress[-1] == (chunks, chunks)
    assert stems["vocals"].shape == mix.shape


def test_separate_file_refuses_bad_input_and_leaves_nothing(
    separator: Separator, tmp_path: Path
) -> None:
    bad = tmp_path / "song.mp3"
    bad.write_bytes(b"<html>404 not found</html>" * 40)
    with pytest.raises(AudioDecodeError, match="song.mp3: not an audio file"):
        separator.separate_file(bad, tmp_path / "out", StemPreset.FOUR_STEMS)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
