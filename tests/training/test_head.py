"""The v3 piano head's data: the held-out soundfont stays out, and a crop read alone equals
the same frames of the whole song. The head's own tests need PyTorch (skipped without)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from separation import dsp
from separation.htdemucs import SEGMENT
from training import features, teacher
from training.instruments import HELD_OUT_SOUNDFONT


def test_the_training_songs_never_draw_the_held_out_soundfont() -> None:
    assert not features.TRAIN3.held_out
    assert HELD_OUT_SOUNDFONT not in dict(features.TRAIN3.soundfonts)
    assert features.VALID.held_out


def fake_song(root: Path, index: int, rng: np.random.Generator) -> None:
    recipe = features.TRAIN3
    song = rng.standard_normal((5, 2, SEGMENT)).astype(np.float32) * 0.1
    teacher._save(teacher.song_path(root, recipe, index), song)
    four = rng.standard_normal((4, 2, SEGMENT)).astype(np.float16)
    teacher._save(teacher.teacher_path(root, recipe, index), four)
    shape = (features.CHANNELS, features.ROWS, features.FRAMES)
    teacher._save(features.feature_path(root, recipe, index),
                  rng.standard_normal(shape).astype(np.float16))


def test_a_crop_read_alone_equals_those_frames_of_the_whole_song(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from training import head

    fake_song(tmp_path, 0, np.random.default_rng(1))
    whole = head.load(tmp_path, features.TRAIN3.split, 0)
    assert whole.stems.shape == (4, 2, dsp.N_FFT // 2, features.FRAMES)
    for start in (head.MARGIN, 100, head.LAST_FRAME - 64):
        crop = head.load_crop(tmp_path, 0, start, start + 64)
        for part in ("activations", "shares", "stems", "piano"):
            np.testing.assert_allclose(getattr(crop, part).numpy(),
                                       getattr(whole, part)[..., start:start + 64].numpy(),
                                       atol=1e-5)


def test_the_shares_of_each_bin_add_up_to_one_and_masks_cover_every_bin() -> None:
    torch = pytest.importorskip("torch")
    from training import head

    rng = np.random.default_rng(2)
    z = (rng.standard_normal((4, 2, 2048, 10)) + 1j).astype(np.complex64)
    shares = head.shares_of(z)
    assert shares.shape == (head.SHARES, features.ROWS, 10)
    np.testing.assert_allclose(shares.reshape(4, 4, features.ROWS, 10).sum(axis=0), 1.0,
                               atol=1e-4)
    model = head.PianoHead(8)
    with torch.no_grad():
        masks = model(torch.zeros(1, features.CHANNELS, features.ROWS, 10),
                      torch.from_numpy(shares[None]))
    assert masks.shape == (1, 4, 2048, 10)
    assert float(masks.min()) >= 0.0 and float(masks.max()) <= 1.0
