"""A streamed mix reads exactly as the whole array does, while holding only a window of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from separation import OutputFormat, audio, encode
from separation.apply import shift_offsets, stream_chunks, stream_shifted
from separation.mix_source import ArrayMix, Delayed, StreamedMix

SEGMENT = 1000


def position_model(chunk: np.ndarray) -> np.ndarray:
    """Not shift-invariant, like the network: a streamed read at the wrong place shows."""
    ramp = np.linspace(0.5, 1.5, chunk.shape[-1], dtype=np.float32)
    return np.stack([chunk, chunk * ramp])


def blocks_of(mix: np.ndarray, sizes: list[int]) -> Iterator[np.ndarray]:
    """The mix cut into blocks of the given sizes, cycled: a decoder's uneven frames."""
    position, n = 0, 0
    while position < mix.shape[1]:
        size = sizes[n % len(sizes)]
        yield mix[:, position : position + size]
        position, n = position + size, n + 1


def streamed(mix: np.ndarray, keep: int = 3 * SEGMENT) -> StreamedMix:
    return StreamedMix(lambda: blocks_of(mix, [37, 1024, 5, 300]), 2, mix.shape[1], keep)


@pytest.mark.parametrize("length", [1, 999, 1000, 4321, 20_000])
def test_streamed_separation_equals_the_array_separation(length: int) -> None:
    mix = np.random.default_rng(length).standard_normal((2, length)).astype(np.float32)
    whole = np.concatenate(list(stream_chunks(position_model, mix, SEGMENT, 2)), axis=-1)
    got = np.concatenate(list(stream_chunks(position_model, streamed(mix), SEGMENT, 2)), axis=-1)
    assert np.array_equal(got, whole)


def test_streamed_shifts_equal_the_array_shifts() -> None:
    mix = np.random.default_rng(3).standard_normal((2, 12_345)).astype(np.float32)
    offsets = shift_offsets(3, max_shift=300)
    whole = np.concatenate(list(stream_shifted(position_model, mix, SEGMENT, 2, offsets, 300)),
                           axis=-1)
    got = np.concatenate(list(stream_shifted(position_model, streamed(mix), SEGMENT, 2,
                                             offsets, 300)), axis=-1)
    assert np.array_equal(got, whole)


def test_a_streamed_mix_holds_a_window_not_the_song() -> None:
    mix = np.random.default_rng(1).standard_normal((2, 200_000)).astype(np.float32)
    source = streamed(mix, keep=2000)
    held = []
    for start in range(-500, 200_000, 750):
        assert np.array_equal(source.window(start, start + SEGMENT),
                              ArrayMix(mix).window(start, start + SEGMENT))
        held.append(source._data.shape[1])
    assert max(held) < 2000 + SEGMENT + 1024 + 750  # keep + a window + a block + a step
    with pytest.raises(RuntimeError, match="already dropped"):
        source.window(0, 10)


def test_windows_past_the_ends_and_delays_read_as_silence() -> None:
    mix = np.arange(1, 11, dtype=np.float32)[None].repeat(2, axis=0)
    assert ArrayMix(mix).window(-2, 3)[0].tolist() == [0, 0, 1, 2, 3]
    assert streamed(mix).window(8, 13)[0].tolist() == [9, 10, 0, 0, 0]
    late = Delayed(ArrayMix(mix), delay=3, length=8)
    assert late.window(0, 10)[0].tolist() == [0, 0, 0, 1, 2, 3, 4, 5, 0, 0]


def test_a_file_counted_then_streamed_reads_as_decoded(tmp_path: Path) -> None:
    mix = np.random.default_rng(5).uniform(-0.5, 0.5, (2, 100_000)).astype(np.float32)
    path = encode(tmp_path / "song.flac", mix, OutputFormat.FLAC)
    seen: list[int] = []
    length = audio.count_samples(path, each=lambda block: seen.append(block.shape[1]))
    decoded = audio.decode(path)
    assert length == sum(seen) == decoded.shape[1]
    source = StreamedMix(lambda: audio.decoded_blocks(path), 2, length, keep=4 * SEGMENT)
    for start in range(0, length, 750):
        assert np.array_equal(source.window(start, start + SEGMENT),
                              ArrayMix(decoded).window(start, start + SEGMENT))
