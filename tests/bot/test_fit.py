"""Encoding a stem to fit an upload limit: lossy formats step down, lossless ones do not."""

from __future__ import annotations

from pathlib import Path

from bot.fit import encode_to_fit
from separation import OutputFormat, decode
from separation.audio import SAMPLE_RATE


def test_fits_at_full_quality_when_there_is_room(demo_wav: Path, tmp_path: Path) -> None:
    out = encode_to_fit(demo_wav, tmp_path / "a.mp3", OutputFormat.MP3, 10 * 1024 * 1024)
    assert out is not None
    # 7 s at 320 kbit/s is about 280 kB.
    assert 250_000 < out.stat().st_size < 300_000


def test_lossy_steps_down_the_bitrate_to_fit(demo_wav: Path, tmp_path: Path) -> None:
    out = encode_to_fit(demo_wav, tmp_path / "a.mp3", OutputFormat.MP3, 150_000)
    assert out is not None and out.stat().st_size <= 150_000
    audio = decode(out)
    assert abs(audio.shape[1] / SAMPLE_RATE - 7.0) < 0.1


def test_nothing_fits_below_the_lowest_bitrate(demo_wav: Path, tmp_path: Path) -> None:
    assert encode_to_fit(demo_wav, tmp_path / "a.opus", OutputFormat.OPUS, 20_000) is None
    assert not (tmp_path / "a.opus").exists()


def test_lossless_is_not_degraded(demo_wav: Path, tmp_path: Path) -> None:
    assert encode_to_fit(demo_wav, tmp_path / "a.flac", OutputFormat.FLAC, 100_000) is None
    out = encode_to_fit(demo_wav, tmp_path / "a.flac", OutputFormat.FLAC, 5_000_000)
    assert out is not None and out.suffix == ".flac"
