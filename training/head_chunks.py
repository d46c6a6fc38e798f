"""The v3 piano head as the runtime would run it: per HT-Demucs chunk, one graph call.

`HeadChunks` is a chunk model for `separation.apply`: [2, SEGMENT] -> [8, 2, SEGMENT], the
four stems then the piano each stem holds (masks on HT-Demucs' own STFT of the stem).
Overlap-added by the same cross-fade as the stems, the takes stay inside their stems, so
`separation.piano.split` keeps the identity: the five stems add up to the four.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from separation import dsp
from separation.dsp import Float
from separation.htdemucs import SEGMENT
from separation.runtime import RuntimeConfig, open_graph
from training.features import FeatureNetwork
from training.head import shares_of


class HeadChunks:
    """HT-Demucs with its decoder activations, then the head's masks on each stem."""

    def __init__(self, htdemucs: Path, head: Path, threads: int = 2) -> None:
        self._network = FeatureNetwork(htdemucs, threads)
        self._head = open_graph(head, RuntimeConfig(threads=threads))

    def __call__(self, chunk: Float) -> Float:
        four, activations = self._network(chunk)
        z = dsp.spec(four)  # [4, 2, 2048, 336]
        (masks,) = self._head.run([activations[None], shares_of(z)[None]])
        takes = dsp.ispec((z * masks[0][:, None]).astype(np.complex64), SEGMENT)
        out: Float = np.concatenate([four, takes.astype(np.float32)])
        return out
