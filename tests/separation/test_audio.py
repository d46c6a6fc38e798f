"""Decoding what users post, refusing what is not audio, and writing stems."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from separation import audio
from separation.audio import Limits, OutputFormat
from separation.errors import (
    AudioDecodeError,
    AudioTooLargeError,
    AudioTooLongError,
    EmptyAudioError,
    UnsupportedFormatError,
)

RATE = audio.SAMPLE_RATE


def tone(seconds: float, rate: int, channels: int) -> np.ndarray:
    """A distinct sine per channel, at half scale."""
    t = np.arange(round(seconds * rate)) / rate
    return np.stack([0.5 * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)])


def write(path: Path, samples: np.ndarray, rate: int, codec: str, sample_format: str) -> Path:
    """Encode [channels, n] samples with any FFmpeg codec, as a user's file would be."""
    layout = {1: "mono", 2: "stereo", 6: "5.1"}[samples.shape[0]]
    with av.open(str(path), "w") as container:
        # FFmpeg's own vorbis encoder is flagged experimental
        options = {"strict": "experimental"} if codec == "vorbis" else {}
        stream = container.add_stream(codec, rate=rate, layout=layout, options=options)
        planar = sample_format.endswith("p")
        data = samples if planar else samples.T.reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(
            _as(data, sample_format), format=sample_format, layout=layout
        )
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def _as(data: np.ndarray, sample_format: str) -> np.ndarray:
    kind = sample_format.rstrip("p")
    scale = {"u8": 127, "s16": 32767, "s32": 2**31 - 1}
    if kind == "u8":
        return np.ascontiguousarray((data * scale[kind] + 128).astype(np.uint8))
    if kind in scale:
        return np.ascontiguousarray((data * scale[kind]).astype(f"int{kind[1:]}"))
    return np.ascontiguousarray(data.astype(np.float32 if kind == "flt" else np.float64))


CASES = [
    ("u8.wav", "pcm_u8", "u8", 22_050, 1, 2e-2),
    ("s16.wav", "pcm_s16le", "s16", 44_100, 2, 1e-3),
    ("s24.wav", "pcm_s24le", "s32", 48_000, 2, 1e-3),
    ("s32.wav", "pcm_s32le", "s32", 96_000, 2, 1e-3),
    ("f32.wav", "pcm_f32le", "flt", 44_100, 1, 1e-5),
    ("f64.wav", "pcm_f64le", "dbl", 32_000, 2, 1e-3),
    ("a.flac", "flac", "s16", 48_000, 2, 1e-3),
    ("a.mp3", "libmp3lame", "fltp", 44_100, 2, None),
    ("a.ogg", "libvorbis", "fltp", 44_100, 2, None),
    ("a.opus", "libopus", "flt", 48_000, 2, None),
    ("a.m4a", "aac", "fltp", 44_100, 2, None),
    ("surround.flac", "flac", "s32", 48_000, 6, None),
]


@pytest.mark.parametrize(("name", "codec", "fmt", "rate", "channels", "tolerance"), CASES)
def test_decodes_every_common_format_to_44k1_stereo(
    tmp_path: Path,
    name: str,
    codec: str,
    fmt: str,
    rate: int,
    channels: int,
    tolerance: float | None,
) -> None:
    if codec == "libvorbis" and not _has_encoder("libvorbis"):
        codec, fmt = "vorbis", "fltp"
    source = tone(2.0, rate, channels)
    decoded = audio.decode(write(tmp_path / name, source, rate, codec, fmt))
    assert decoded.dtype == np.float32
    assert decoded.shape[0] == 2
    assert abs(decoded.shape[1] - 2 * RATE) < 0.06 * RATE  # lossy codecs add a frame or two
    if tolerance is not None:
        expected = tone(2.0, RATE, channels)
        if channels == 1:
            expected = np.repeat(expected, 2, axis=0)
        n = min(decoded.shape[1], expected.shape[1]) - 200  # resampler edge
        assert np.abs(decoded[:, 100:n] - expected[:, 100:n]).max() < max(tolerance, 2e-3)
    assert np.abs(decoded).max() > 0.2


def _has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except Exception:
        return False
    return True


def test_mono_is_duplicated_not_attenuated(tmp_path: Path) -> None:
    source = tone(1.0, RATE, 1)
    decoded = audio.decode(write(tmp_path / "mono.wav", source, RATE, "pcm_f32le", "flt"))
    assert np.array_equal(decoded[0], decoded[1])
    assert np.allclose(decoded[0], source[0], atol=1e-6)


def test_surround_is_downmixed_to_two_channels(tmp_path: Path) -> None:
    decoded = audio.decode(write(tmp_path / "s.wav", tone(1.0, RATE, 6), RATE, "pcm_s16le", "s16"))
    assert decoded.shape == (2, RATE)


def test_silence_is_valid_audio(tmp_path: Path) -> None:
    silent = np.zeros((2, RATE), dtype=np.float32)
    decoded = audio.decode(write(tmp_path / "silence.wav", silent, RATE, "pcm_s16le", "s16"))
    assert decoded.shape == (2, RATE)
    assert not decoded.any()


def test_not_audio_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp3"
    path.write_text("these are my lyrics, not an mp3\n" * 50)
    with pytest.raises(AudioDecodeError, match="notes.mp3: not an audio file"):
        audio.decode(path)


def test_random_bytes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "noise.flac"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 40_000, dtype=np.uint8).tobytes())
    with pytest.raises(AudioDecodeError):
        audio.decode(path)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioDecodeError, match="empty.wav"):
        audio.decode(path)


def test_zero_sample_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "zero.wav"
    fmt = (16).to_bytes(4, "little") + bytes.fromhex("01000200 44ac0000 10b10200 04001000")
    path.write_bytes(b"RIFF" + (36).to_bytes(4, "little") + b"WAVEfmt " + fmt + b"data" + bytes(4))
    with pytest.raises(EmptyAudioError, match="no audio samples"):
        audio.decode(path)


@pytest.mark.parametrize(
    ("name", "codec", "fmt"),
    [
        ("t.wav", "pcm_s16le", "s16"),
        ("t.flac", "flac", "s16"),
        ("t.mp3", "libmp3lame", "fltp"),
    ],
)
def test_truncated_files_are_refused(tmp_path: Path, name: str, codec: str, fmt: str) -> None:
    whole = write(tmp_path / name, tone(4.0, RATE, 2), RATE, codec, fmt)
    cut = tmp_path / f"cut-{name}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(AudioDecodeError, match="truncated|corrupt"):
        audio.decode(cut)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AudioDecodeError, match="no such file"):
        audio.decode(tmp_path / "nothing.wav")


def test_too_long_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "long.wav", tone(3.0, RATE, 2), RATE, "pcm_s16le", "s16")
    with pytest.raises(AudioTooLongError, match="longer than the 0:02 limit"):
        audio.decode(path, Limits(max_seconds=2))


def test_too_long_without_a_declared_duration_stops_early(tmp_path: Path) -> None:
    # raw ADTS AAC declares no duration: the limit must hold while decoding
    path = write(tmp_path / "long.aac", tone(3.0, RATE, 2), RATE, "aac", "fltp")
    with pytest.raises(AudioTooLongError):
        audio.decode(path, Limits(max_seconds=1))


def test_too_large_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "big.wav", tone(1.0, RATE, 2), RATE, "pcm_s16le", "s16")
    with pytest.raises(AudioTooLargeError, match="over the"):
        audio.decode(path, Limits(max_bytes=1000))


@pytest.mark.parametrize("fmt", [OutputFormat.WAV, OutputFormat.WAV_FLOAT, OutputFormat.FLAC])
def test_lossless_stems_keep_exact_length_and_samples(tmp_path: Path, fmt: OutputFormat) -> None:
    samples = tone(1.5, RATE, 2).astype(np.float32)
    path = audio.encode(tmp_path / f"stem.{fmt.extension}", samples, fmt)
    decoded = audio.decode(path)
    assert decoded.shape == samples.shape
    assert np.abs(decoded - samples).max() < (1e-7 if fmt is OutputFormat.WAV_FLOAT else 1e-4)


@pytest.mark.parametrize("fmt", [OutputFormat.MP3, OutputFormat.OPUS])
def test_lossy_stems_keep_their_duration(tmp_path: Path, fmt: OutputFormat) -> None:
    samples = tone(1.5, RATE, 2).astype(np.float32)
    path = audio.encode(tmp_path / f"stem.{fmt.extension}", samples, fmt, bitrate=128_000)
    decoded = audio.decode(path)
    assert abs(decoded.shape[1] - samples.shape[1]) <= 1152  # one codec frame at most
    with av.open(str(path)) as container:
        rate = container.streams.audio[0].codec_context.sample_rate
    assert rate == (48_000 if fmt is OutputFormat.OPUS else RATE)


def test_writer_streams_blocks_into_one_file(tmp_path: Path) -> None:
    samples = tone(2.0, RATE, 2).astype(np.float32)
    with audio.AudioWriter(tmp_path / "s.flac", OutputFormat.FLAC) as writer:
        for start in range(0, samples.shape[1], 10_000):
            writer.write(samples[:, start : start + 10_000])
    assert np.abs(audio.decode(tmp_path / "s.flac") - samples).max() < 1e-4


def test_unknown_format_names_the_choices() -> None:
    with pytest.raises(UnsupportedFormatError, match="wav, wav-float, flac, mp3, opus"):
        audio.parse_format("aiff")
