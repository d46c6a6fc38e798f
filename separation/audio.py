"""Decode any audio file to 44.1 kHz stereo float32, and encode stems, with PyAV."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import av
import av.error
import numpy as np

from separation.dsp import Float
from separation.errors import (
    AudioDecodeError,
    AudioTooLargeError,
    AudioTooLongError,
    EmptyAudioError,
    UnsupportedFormatError,
)

SAMPLE_RATE = 44_100
CHANNELS = 2
# A file that decodes to less than this share of its declared duration is truncated.
_TRUNCATION_RATIO = 0.98

logging.getLogger("libav").setLevel(logging.CRITICAL)
av.logging.set_level(None)


@dataclass(frozen=True, slots=True)
class Limits:
    """What the engine accepts; the defaults suit a small self-hosted machine."""

    max_seconds: float = 15 * 60
    max_bytes: int = 500 * 1024 * 1024

    def check_size(self, path: Path) -> None:
        size = path.stat().st_size
        if size > self.max_bytes:
            raise AudioTooLargeError(
                f"{path.name}: file is {_mib(size)}, over the {_mib(self.max_bytes)} limit"
            )

    def check_seconds(self, name: str, seconds: float) -> None:
        if seconds > self.max_seconds:
            raise AudioTooLongError(
                f"{name}: audio is longer than the {_clock(self.max_seconds)} limit"
                f" ({_clock(seconds)})"
            )


class OutputFormat(enum.StrEnum):
    """Stem file formats; the value is what users type."""

    WAV = "wav"
    WAV_FLOAT = "wav-float"
    FLAC = "flac"
    MP3 = "mp3"
    OPUS = "opus"

    @property
    def extension(self) -> str:
        return "wav" if self is OutputFormat.WAV_FLOAT else self.value


@dataclass(frozen=True, slots=True)
class _Codec:
    container: str
    codec: str
    rate: int
    lossy: bool


_CODECS = {
    OutputFormat.WAV: _Codec("wav", "pcm_s16le", SAMPLE_RATE, False),
    OutputFormat.WAV_FLOAT: _Codec("wav", "pcm_f32le", SAMPLE_RATE, False),
    OutputFormat.FLAC: _Codec("flac", "flac", SAMPLE_RATE, False),
    OutputFormat.MP3: _Codec("mp3", "libmp3lame", SAMPLE_RATE, True),
    # Opus only codes 48 kHz; players resample, the duration is unchanged.
    OutputFormat.OPUS: _Codec("ogg", "libopus", 48_000, True),
}


def parse_format(value: str) -> OutputFormat:
    try:
        return OutputFormat(value.lower())
    except ValueError:
        known = ", ".join(f.value for f in OutputFormat)
        raise UnsupportedFormatError(f"unknown format {value!r}: use one of {known}") from None


def decode(path: Path, limits: Limits | None = None) -> Float:
    """Decode a file to float32 [2, samples] at 44.1 kHz; mono is duplicated, more is downmixed."""
    buffer: _Growable | None = None
    for block, declared in _checked_blocks(Path(path), limits or Limits()):
        if buffer is None:  # one allocation for the declared length, grown only if it lied
            buffer = _Growable(CHANNELS, round(((declared or 30.0) + 1.0) * SAMPLE_RATE))
        buffer.append(block)
    assert buffer is not None, "a file without samples raises EmptyAudioError"
    return buffer.array()


def decoded_blocks(path: Path, limits: Limits | None = None) -> Iterator[Float]:
    """The file's audio as consecutive float32 [2, n] blocks at 44.1 kHz, checked as `decode`
    checks it; a fault found late (truncation) raises after the last block."""
    for block, _declared in _checked_blocks(Path(path), limits or Limits()):
        yield block


def count_samples(path: Path, limits: Limits | None = None,
                  each: Callable[[Float], None] | None = None) -> int:
    """Decode the whole file once, checking it, without keeping it; each block goes to `each`.

    Returns the number of samples, so that a second pass can stream the file knowing its length.
    """
    total = 0
    for block in decoded_blocks(path, limits):
        total += block.shape[1]
        if each is not None:
            each(block)
    return total


def _checked_blocks(path: Path, limits: Limits) -> Iterator[tuple[Float, float | None]]:
    """(stereo block, declared seconds) pairs; every check of `decode` on the way."""
    if not path.is_file():
        raise AudioDecodeError(f"{path}: no such file")
    limits.check_size(path)
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError):
        raise AudioDecodeError(f"{path.name}: not an audio file (FFmpeg cannot read it)") from None
    with container:
        if not container.streams.audio:
            raise AudioDecodeError(f"{path.name}: contains no audio stream")
        stream = container.streams.audio[0]
        declared = container.duration / 1_000_000 if container.duration else None
        if container.format.name == "wav" and _riff_truncated(path):
            raise AudioDecodeError(f"{path.name}: truncated: the WAV header promises more data")
        if declared is not None:
            limits.check_seconds(path.name, declared)
        samples = 0
        for block in _decode_stream(container, stream, path.name, limits):
            samples += block.shape[1]
            yield block, declared
    if samples == 0:
        raise EmptyAudioError(f"{path.name}: contains no audio samples")
    if declared and samples < _TRUNCATION_RATIO * declared * SAMPLE_RATE - SAMPLE_RATE:
        raise AudioDecodeError(
            f"{path.name}: truncated or corrupt: {_clock(samples / SAMPLE_RATE)} decoded"
            f" of {_clock(declared)} declared"
        )


def _decode_stream(
    container: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    name: str,
    limits: Limits,
) -> Iterator[Float]:
    """Resampled stereo blocks; the length limit is checked as they come."""
    mono = stream.codec_context.channels == 1
    resampler = av.AudioResampler(
        format="fltp", layout="mono" if mono else "stereo", rate=SAMPLE_RATE
    )
    max_samples = int(limits.max_seconds * SAMPLE_RATE)
    length = 0
    try:
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                block = _planar(out)
                length += block.shape[1]
                if length > max_samples:
                    limits.check_seconds(name, length / SAMPLE_RATE)
                yield np.repeat(block, 2, axis=0) if mono else block
        for out in resampler.resample(None):
            block = _planar(out)
            length += block.shape[1]
            yield np.repeat(block, 2, axis=0) if mono else block
    except av.error.FFmpegError:
        raise AudioDecodeError(f"{name}: corrupt or truncated audio data") from None
    limits.check_seconds(name, length / SAMPLE_RATE)


def _planar(frame: av.AudioFrame) -> Float:
    """A resampled fltp frame as [channels, n] float32."""
    samples: Float = frame.to_ndarray().astype(np.float32, copy=False)
    return samples


def _riff_truncated(path: Path) -> bool:
    """True when a WAV's `data` chunk declares more bytes than the file holds.

    FFmpeg derives a WAV's duration from the file size, so only the header tells.
    """
    with path.open("rb") as f:
        header = f.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return False
        while chunk := f.read(8):
            if len(chunk) < 8:
                return True
            size = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                remaining = path.stat().st_size - f.tell()
                # 0 and 0xFFFFFFFF mark a stream written without knowing its length.
                return size not in (0, 0xFFFFFFFF) and size > remaining
            f.seek(size + (size & 1), 1)
    return True


class _Growable:
    """An append-only [channels, n] float32 buffer, sized from the declared duration.

    A long track decodes into one allocation; `array` is a view, not a copy, so the
    decoded audio is in memory once.
    """

    def __init__(self, channels: int, expected_samples: int) -> None:
        self._data = np.empty((channels, max(expected_samples, SAMPLE_RATE)), dtype=np.float32)
        self.length = 0

    def append(self, block: Float) -> None:
        end = self.length + block.shape[1]
        if end > self._data.shape[1]:
            capacity = max(end, self._data.shape[1] * 3 // 2)
            grown = np.empty((self._data.shape[0], capacity), np.float32)
            grown[:, : self.length] = self._data[:, : self.length]
            self._data = grown
        self._data[:, self.length : end] = block
        self.length = end

    def array(self) -> Float:
        return self._data[:, : self.length]


class AudioWriter:
    """Encode one stereo 44.1 kHz stream block by block, so a stem never sits whole in memory."""

    def __init__(self, path: Path, fmt: OutputFormat, bitrate: int = 320_000) -> None:
        codec = _CODECS[fmt]
        self.path = path
        self._container = av.open(str(path), "w", format=codec.container)
        stream = self._container.add_stream(codec.codec, rate=codec.rate, layout="stereo")
        assert isinstance(stream, av.audio.stream.AudioStream)
        self._stream = stream
        if codec.lossy:
            self._stream.bit_rate = bitrate
        self._written = 0

    def write(self, block: Float) -> None:
        """Append [2, n] float32 samples."""
        if block.shape[1] == 0:
            return
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(block, dtype=np.float32), format="fltp", layout="stereo"
        )
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._written
        self._written += block.shape[1]
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()

    def __enter__(self) -> AudioWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
        else:
            self._container.close()


def encode(path: Path, audio: Float, fmt: OutputFormat, bitrate: int = 320_000) -> Path:
    """Write a whole [2, n] array to `path` in `fmt`."""
    with AudioWriter(path, fmt, bitrate) as writer:
        writer.write(audio)
    return path


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def _clock(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"
