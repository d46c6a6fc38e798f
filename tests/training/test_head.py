"""The v3 piano head's data: the held-out soundfont stays out of its training songs.

The head itself needs PyTorch (the `train` extra, which CI does not install); it was not
shipped, and its runs are recorded in MODEL_CARD.md."""

from __future__ import annotations

from training import features
from training.instruments import HELD_OUT_SOUNDFONT


def test_the_training_songs_never_draw_the_held_out_soundfont() -> None:
    assert not features.TRAIN3.held_out
    assert HELD_OUT_SOUNDFONT not in dict(features.TRAIN3.soundfonts)
    assert features.VALID.held_out

