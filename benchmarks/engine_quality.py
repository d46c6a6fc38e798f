"""4-stem SDR and time per runtime, precision and number of shifts, on rendered songs.

Six 20 s songs from the piano benchmark's generator (benchmarks/piano_quality.py: drums, bass,
piano, other instruments and an espeak-ng voice, each rendered alone, so the true stems are
known; `other` = piano + the rest). Each song is separated in every setting; the table gives
the mean SDR per stem, its change against OpenVINO f32 with 1 shift, and the mean time.

    .venv/bin/python -m benchmarks.engine_quality [--songs 6] [--seconds 20]
    .venv/bin/python -m benchmarks.engine_quality --seconds 60 --overlaps 0.25 0.1 0

`--overlaps` compares chunk overlaps instead (OpenVINO bf16, 1 shift, against f32 at 0.25).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.piano_quality import clip
from separation import Separator, StemPreset, synth
from separation.dsp import Float
from separation.runtime import Precision, RuntimeConfig, RuntimeName

Setting = tuple[str, RuntimeConfig, int]

SETTINGS: list[Setting] = [  # (label, config, shifts); the first is the reference
    ("openvino f32, 1 shift", RuntimeConfig(RuntimeName.OPENVINO, Precision.F32), 1),
    ("onnxruntime f32, 1 shift", RuntimeConfig(RuntimeName.ONNXRUNTIME, Precision.F32), 1),
    ("openvino bf16, 1 shift", RuntimeConfig(RuntimeName.OPENVINO, Precision.BF16), 1),
    ("openvino bf16, 2 shifts", RuntimeConfig(RuntimeName.OPENVINO, Precision.BF16), 2),
    ("openvino bf16, 4 shifts", RuntimeConfig(RuntimeName.OPENVINO, Precision.BF16), 4),
]
STEMS = StemPreset.FOUR_STEMS.stems


def overlap_settings(overlaps: list[float]) -> list[Setting]:
    """f32 at Demucs' 0.25 as the reference, then bf16 at each overlap."""
    f32 = RuntimeConfig(RuntimeName.OPENVINO, Precision.F32, overlap=0.25)
    return [("openvino f32, overlap 0.25", f32, 1)] + [
        (f"openvino bf16, overlap {o:g}",
         RuntimeConfig(RuntimeName.OPENVINO, Precision.BF16, overlap=o), 1) for o in overlaps]


def four_stem_truth(index: int, seconds: float) -> dict[str, Float]:
    stems = clip(index, seconds)
    return {"vocals": stems["vocals"], "drums": stems["drums"], "bass": stems["bass"],
            "other": stems["piano"] + stems["rest"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--songs", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--overlaps", type=float, nargs="+", default=None,
                        help="compare these chunk overlaps instead of runtimes and shifts")
    args = parser.parse_args()
    settings = overlap_settings(args.overlaps) if args.overlaps else SETTINGS
    songs = [four_stem_truth(n, args.seconds) for n in range(args.songs)]
    scores: dict[str, list[dict[str, float]]] = {}
    times: dict[str, list[float]] = {}
    separators: dict[RuntimeConfig, Separator] = {}
    for label, config, shifts in settings:
        separator = separators.setdefault(config, Separator(config=config))
        for truth in songs:
            mix = np.sum(list(truth.values()), axis=0)
            started = time.perf_counter()
            stems = separator.separate(mix, StemPreset.FOUR_STEMS, shifts=shifts)
            times.setdefault(label, []).append(time.perf_counter() - started)
            scores.setdefault(label, []).append(
                {stem: synth.sdr(truth[stem], stems[stem]) for stem in STEMS})
    reference = settings[0][0]

    def mean(label: str, stem: str) -> float:
        return float(np.mean([s[stem] for s in scores[label]]))

    def worst_change(label: str) -> float:
        return min(s[stem] - r[stem] for s, r in zip(scores[label], scores[reference], strict=True)
                   for stem in STEMS)

    print(f"{args.songs} songs of {args.seconds:g} s; SDR in dB (change against {reference})")
    print("| setting | " + " | ".join(STEMS) + " | mean | worst single stem | time per song |")
    print("|---|" + "---|" * (len(STEMS) + 3))
    results = {}
    for label, _, _ in settings:
        cells = [f"{mean(label, s):.2f} ({mean(label, s) - mean(reference, s):+.2f})"
                 for s in STEMS]
        overall = np.mean([mean(label, s) for s in STEMS])
        change = overall - np.mean([mean(reference, s) for s in STEMS])
        print(f"| {label} | " + " | ".join(cells) + f" | {overall:.2f} ({change:+.2f}) |"
              f" {worst_change(label):+.2f} | {np.mean(times[label]):.1f} s |", flush=True)
        results[label] = {"sdr": {s: mean(label, s) for s in STEMS},
                          "seconds": float(np.mean(times[label]))}
    folder = Path("benchmarks/out")
    folder.mkdir(parents=True, exist_ok=True)
    name = "engine_overlap.json" if args.overlaps else "engine_quality.json"
    (folder / name).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
