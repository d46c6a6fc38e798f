"""Chunking, cross-fade and streaming, checked with a model whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from separation.apply import (
    ChunkPlan,
    padded_chunk,
    separate_all,
    shift_offsets,
    stream_chunks,
    stream_shifted,
    triangle_weight,
)

SEGMENT = 1000


def scale_model(chunk: np.ndarray) -> np.ndarray:
    """Two 'sources': the chunk and twice the chunk, so the exact answer is known."""
    return np.stack([chunk, 2 * chunk])


@pytest.mark.parametrize("overlap", [0.0, 0.1, 0.25, 0.5])
@pytest.mark.parametrize("length", [1, 37, 750, 999, 1000, 1001, 4321])
def test_overlap_add_reconstructs_exactly(length: int, overlap: float) -> None:
    mix = np.random.default_rng(length).standard_normal((2, length)).astype(np.float32)
    out = separate_all(scale_model, mix, SEGMENT, sources=2, overlap=overlap)
    assert out.shape == (2, 2, length)
    assert np.allclose(out[0], mix, atol=1e-5)
    assert np.allclose(out[1], 2 * mix, atol=1e-5)


def test_stream_blocks_are_consecutive_and_cover_the_input() -> None:
    mix = np.random.default_rng(0).standard_normal((2, 5000)).astype(np.float32)
    blocks = list(stream_chunks(scale_model, mix, SEGMENT, sources=2, overlap=0.25))
    assert [b.shape[-1] for b in blocks[:-1]] == [750] * (len(blocks) - 1)
    assert sum(b.shape[-1] for b in blocks) == 5000
    assert np.allclose(np.concatenate(blocks, axis=-1)[0], mix, atol=1e-5)


def test_progress_reports_every_chunk() -> None:
    calls: list[tuple[int, int]] = []
    mix = np.zeros((2, 2600), dtype=np.float32)
    separate_all(scale_model, mix, SEGMENT, 2, progress=lambda d, t: calls.append((d, t)),
                 overlap=0.25)
    plan = ChunkPlan(2600, SEGMENT, 0.25)
    assert plan.total == 4
    assert calls == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]


def test_less_overlap_means_fewer_chunks() -> None:
    # chunks start every (1 - overlap) segments: 250, 100 and no samples computed twice
    assert [ChunkPlan(2600, SEGMENT, o).total for o in (0.25, 0.1, 0.0)] == [4, 3, 3]
    assert [ChunkPlan(2600, SEGMENT, o).stride for o in (0.25, 0.1, 0.0)] == [750, 900, 1000]


def test_short_final_chunk_takes_context_from_before_it() -> None:
    mix = np.arange(1, 1201, dtype=np.float32)[None]
    chunk = padded_chunk(mix, offset=750, segment=SEGMENT)
    # 450 real samples centred in 1000: 275 samples of context before, zeros after the end
    assert chunk.shape == (1, SEGMENT)
    assert chunk[0, 0] == 476.0
    assert chunk[0, 724] == 1200.0
    assert not chunk[0, 725:].any()


def test_triangle_weight_matches_demucs() -> None:
    weight = triangle_weight(8)
    assert np.allclose(weight, np.array([1, 2, 3, 4, 4, 3, 2, 1]) / 4)
    assert triangle_weight(343_980).shape == (343_980,)


def position_model(chunk: np.ndarray) -> np.ndarray:
    """Not shift-invariant: the second 'source' depends on where a sample falls in the chunk."""
    ramp = np.linspace(0.5, 1.5, chunk.shape[-1], dtype=np.float32)
    return np.stack([chunk, chunk * ramp])


@pytest.mark.parametrize("length", [1, 999, 4321])
def test_shifted_streams_stay_aligned_with_the_mix(length: int) -> None:
    mix = np.random.default_rng(length).standard_normal((2, length)).astype(np.float32)
    offsets = shift_offsets(3, max_shift=300)
    blocks = list(stream_shifted(scale_model, mix, SEGMENT, 2, offsets, 300))
    out = np.concatenate(blocks, axis=-1)
    assert out.shape == (2, 2, length)
    assert np.allclose(out[1], 2 * mix, atol=1e-5)


@pytest.mark.parametrize("overlap", [0.25, 0.1])
def test_shifts_average_separations_of_the_delayed_mix_as_demucs_does(overlap: float) -> None:
    mix = np.random.default_rng(7).standard_normal((2, 3210)).astype(np.float32)
    max_shift, offsets = 300, [17, 250, 0]
    padded = np.pad(mix, ((0, 0), (max_shift, max_shift)))
    expected = np.zeros((2, *mix.shape), dtype=np.float32)
    for offset in offsets:
        shifted = separate_all(position_model, padded[..., offset : 3210 + max_shift], SEGMENT, 2,
                               overlap=overlap)
        expected += shifted[..., max_shift - offset :][..., :3210]
    expected /= len(offsets)
    calls: list[tuple[int, int]] = []
    blocks = stream_shifted(position_model, mix, SEGMENT, 2, offsets, max_shift,
                            progress=lambda d, t: calls.append((d, t)), overlap=overlap)
    got = np.concatenate(list(blocks), axis=-1)
    assert np.allclose(got, expected, atol=1e-5)
    unshifted = separate_all(position_model, mix, SEGMENT, 2, overlap=overlap)
    assert not np.allclose(got, unshifted, atol=1e-3)
    total = sum(ChunkPlan(3210 + max_shift - o, SEGMENT, overlap).total for o in offsets)
    assert calls[-1] == (total, total)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_shift_offsets_are_reproducible_and_within_range() -> None:
    first = shift_offsets(4, max_shift=22_050)
    assert first == shift_offsets(4, max_shift=22_050)
    assert len(set(first)) == 4 and all(0 <= o < 22_050 for o in first)
