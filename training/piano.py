"""One command from nothing to models/piano.onnx: `python -m training.piano all`.

Steps: `generate` (render whole songs into datasets/piano2, then run HT-Demucs over each, once),
`train` (resumable, checkpoints in training/runs/piano2), `export` (the best held-out weights,
ONNX into models/piano.onnx, checked against PyTorch). Every step resumes where it stopped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from separation.model_files import PIANO_MODEL_NAME, REPO_ROOT

DATA_ROOT = REPO_ROOT / "datasets" / "piano2"
RUN_DIR = REPO_ROOT / "training" / "runs" / "piano2"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.piano", description=__doc__)
    parser.add_argument("step", choices=("generate", "train", "export", "all"))
    parser.add_argument("--data", type=Path, default=DATA_ROOT)
    parser.add_argument("--run", type=Path, default=RUN_DIR)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "models" / PIANO_MODEL_NAME)
    parser.add_argument("--workers", type=int, default=2, help="rendering processes")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch threads")
    parser.add_argument("--device", default="cpu", help="PyTorch device: cpu, or cuda on a GPU")
    parser.add_argument("--steps", type=int, default=3000, help="training steps in all")
    parser.add_argument("--batch", type=int, default=8, help="crops per step")
    parser.add_argument("--crop-frames", type=int, default=96, help="STFT frames per crop")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    parser.add_argument("--init", type=Path, default=None,
                        help="a new run from these weights (a checkpoint, or the v1 piano.onnx)")
    parser.add_argument("--minutes", type=float, default=None, help="stop training after this")
    parser.add_argument("--splits", default=None,
                        help="train: comma-separated song folders under --data (default: v2's)")
    args = parser.parse_args(argv)
    if args.step in ("generate", "all"):
        from training import teacher

        for recipe in (teacher.VALID, *teacher.TRAINING):
            teacher.render(args.data, recipe, args.workers)
        for recipe in (teacher.VALID, *teacher.TRAINING):
            teacher.teach(args.data, recipe)
    if args.step in ("train", "all"):
        from training import train

        train.train(
            args.data,
            args.run,
            train.Config(
                steps=args.steps,
                batch=args.batch,
                crop_frames=args.crop_frames,
                threads=args.threads,
                device=args.device,
                minutes=args.minutes,
                lr=args.lr,
                init=str(args.init) if args.init else None,
                splits=tuple(args.splits.split(",")) if args.splits else train.Config().splits,
            ),
        )
    if args.step in ("export", "all"):
        from training import export
        from training.train import BEST

        best = args.run / BEST
        export.export(best if best.is_file() else args.run / "last.pt", args.out)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # the checkpoint is saved; no traceback for a deliberate stop
        raise SystemExit(130) from None
