"""Piano v3 data: songs, HT-Demucs' four stems and its last frequency-decoder activations.

HT-Demucs' frequency branch ends in a transposed convolution that turns 48 channels on 512
frequency rows (each row 4 bins of its 4096-point STFT, hop 1024) into the four sources'
spectra. The activations just before it (`FEATURE`, after the last decoder layer's
residual branch) are what the network knows about which instrument plays where; OpenVINO
returns them as an extra output of the same graph. `extract` runs the graph once per song
and caches the stems ([4, 2, SEGMENT] float16, network order drums, bass, other, vocals)
and the features ([48, 512, 336] float16); resumable, one atomic file per song.

    python -m training.features render|extract [--data datasets/piano3] [--count 360]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from separation import dsp, model_files
from separation.audio import SAMPLE_RATE
from separation.dsp import Float
from separation.htdemucs import SEGMENT
from separation.model_files import REPO_ROOT
from separation.ov_graph import compile_properties, core, resolve
from separation.runtime import Precision
from training import teacher
from training.data import Recipe
from training.instruments import EVERY_SOUNDFONT

DATA_ROOT = REPO_ROOT / "datasets" / "piano3"
FEATURE = "/decoder.3/dconv/Add_1_output_0"  # [512 rows, 48 channels, 336 frames]
CHANNELS, ROWS, FRAMES = 48, 512, 336

# every training soundfont Debian packages; TimGM6mb only in VALID (teacher.VALID)
TRAIN3 = Recipe("train3", count=360, seconds=SEGMENT / SAMPLE_RATE, seed=17,
                soundfonts=EVERY_SOUNDFONT)
VALID = teacher.VALID


def feature_path(root: Path, recipe: Recipe, index: int) -> Path:
    return root / recipe.split / "features" / f"{index:05d}.npy"


class FeatureNetwork:
    """HT-Demucs on OpenVINO, also returning the frequency decoder's last activations."""

    def __init__(self, model: Path, threads: int = 2,
                 precision: Precision = Precision.AUTO) -> None:
        network = core().read_model(str(model))
        network.add_outputs([FEATURE])
        properties = compile_properties(resolve(precision), threads)
        self._compiled = core().compile_model(network, "CPU", properties)
        self._request = self._compiled.create_infer_request()

    def __call__(self, chunk: Float) -> tuple[Float, Float]:
        """[2, SEGMENT] -> ([4, 2, SEGMENT] sources, [48, 512, 336] features)."""
        packed = dsp.pack_complex(dsp.spec(chunk))
        self._request.infer([np.ascontiguousarray(chunk[None], dtype=np.float32),
                             packed[None]])
        spectral = self._request.get_output_tensor(0).data
        temporal = self._request.get_output_tensor(1).data
        rows = self._request.get_output_tensor(2).data  # [512, 48, 336]
        sources: Float = temporal[0] + dsp.ispec(dsp.unpack_complex(spectral[0]), SEGMENT)
        features: Float = np.ascontiguousarray(np.transpose(rows, (1, 0, 2)))
        return sources, features


def extract(root: Path, recipe: Recipe, threads: int = 2, follow: bool = False) -> None:
    """Stems and features for every rendered song not yet done; with `follow`, also for the
    songs a rendering running beside it finishes, until the recipe's count is done."""
    network: FeatureNetwork | None = None
    started, done = time.monotonic(), 0
    while True:
        todo = [i for i in range(recipe.count)
                if teacher.song_path(root, recipe, i).is_file()
                and not feature_path(root, recipe, i).is_file()]
        finished = all(feature_path(root, recipe, i).is_file() for i in range(recipe.count))
        if finished or not (todo or follow):
            return
        if not todo:
            time.sleep(30)
            continue
        network = network or FeatureNetwork(
            model_files.model_dir() / model_files.HTDEMUCS.name, threads)
        done = _extract(root, recipe, network, todo, started, done)


def _extract(root: Path, recipe: Recipe, network: FeatureNetwork, todo: list[int],
             started: float, done: int) -> int:
    for index in todo:
        mix = np.load(teacher.song_path(root, recipe, index)).sum(axis=0, dtype=np.float32)
        sources, features = network(mix)
        teacher._save(teacher.teacher_path(root, recipe, index), sources.astype(np.float16))
        teacher._save(feature_path(root, recipe, index), features.astype(np.float16))
        done += 1
        if done % 20 == 0:
            rate = (time.monotonic() - started) / done
            print(f"{recipe.split}: {done} songs' features ({rate:.1f} s each, wall)", flush=True)
    return done


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.features", description=__doc__)
    parser.add_argument("step", choices=("render", "extract"))
    parser.add_argument("--data", type=Path, default=DATA_ROOT)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--follow", action="store_true",
                        help="extract: wait for the songs a rendering beside it is writing")
    args = parser.parse_args(argv)
    for recipe in (VALID, TRAIN3):
        if args.step == "render":
            teacher.render(args.data, recipe, args.workers)
        else:
            extract(args.data, recipe, args.threads, args.follow)


if __name__ == "__main__":
    main()
