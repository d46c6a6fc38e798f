"""INT8 HT-Demucs (issue 26): post-training quantization variants, their SDR and forward time.

Each variant quantizes the ONNX graph with NNCF (OpenVINO's quantizer, `pip install nncf`)
on a calibration set of rendered songs that are not the benchmark songs (clips 100.. of the
piano benchmark's generator; the benchmark songs are clips 0..5), then separates the six
benchmark songs of `benchmarks/engine_quality.py` and compares each stem's SDR with OpenVINO
f32. The issue's limit: every stem's mean SDR within 0.1 dB of f32 and the mean within 0.05 dB.
Forward time per chunk is the median of --repeats runs, each with the 1-minute load average;
--rounds then times the models taking turns, under each --isa cap of oneDNN (a CPU without
BF16 or VNNI, imitated on this one), beside each arithmetic's matrix-product peak.

    python -m benchmarks.engine_int8 [--variants transformer ...] [--calibration 8]
    python -m benchmarks.engine_int8 --rounds 5 --isa native AVX512_CORE_VNNI AVX2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from benchmarks.engine_quality import STEMS, four_stem_truth
from separation import dsp, model_files
from separation.apply import ChunkPlan, padded_chunk, separate_all
from separation.dsp import Float
from separation.htdemucs import SEGMENT, SOURCES

CALIBRATION_FIRST_CLIP = 100  # the benchmark uses clips 0..5; these are other songs
SONG_SECONDS = 20.0
WORK = Path(os.environ.get("INT8_WORK", "/tmp/int8"))
STEM_LIMIT, MEAN_LIMIT = 0.1, 0.05  # dB below f32


def network_inputs(chunk: Float) -> list[Float]:
    """The graph's two inputs for one [2, SEGMENT] chunk, as HTDemucs.__call__ builds them."""
    return [chunk[None], dsp.pack_complex(dsp.spec(chunk))[None]]


def song_mix(index: int) -> Float:
    mix: Float = np.sum(list(four_stem_truth(index, SONG_SECONDS).values()), axis=0)
    return mix


def calibration_chunks(songs: int) -> list[Float]:
    """Every chunk the engine would cut from `songs` calibration songs, cached on disk."""
    cache = WORK / f"calibration-{songs}.npy"
    if cache.is_file():
        return list(np.load(cache))
    chunks = []
    for index in range(CALIBRATION_FIRST_CLIP, CALIBRATION_FIRST_CLIP + songs):
        mix = song_mix(index)
        plan = ChunkPlan(mix.shape[-1], SEGMENT)
        chunks += [padded_chunk(mix, offset, SEGMENT) for offset in plan.offsets]
    WORK.mkdir(parents=True, exist_ok=True)
    np.save(cache, np.stack(chunks))
    return chunks


def benchmark_songs(count: int) -> list[dict[str, Float]]:
    """The engine quality benchmark's songs (true stems), cached on disk."""
    cache = WORK / f"benchmark-{count}.npz"
    if cache.is_file():
        data = np.load(cache)
        return [{s: data[f"{n}-{s}"] for s in STEMS} for n in range(count)]
    songs = [four_stem_truth(n, SONG_SECONDS) for n in range(count)]
    WORK.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {f"{n}-{s}": song[s] for n, song in enumerate(songs) for s in STEMS}
    np.savez(cache, **arrays)
    return songs


# The network's first and last layers on both branches, and the cross-transformer's attention.
ENDS = [r"/(t?encoder\.0|t?decoder\.3)/.*", r"/channel_(up|down)sampler.*"]
WIDE_ENDS = [r"/(t?encoder\.[01]|t?decoder\.[23])/.*", r"/channel_(up|down)sampler.*"]
ATTENTION = [r"/crosstransformer/.*(self_attn|cross_attn).*"]
# OpenVINO 2026.4's CPU plugin fails to compile int8-weight 1x1 convs of the spectral branch
# (ConvertWeightCompressedConv1x1ToMatmul throws), so weight-only variants keep them in f32.
REWRITE = [r".*/rewrite/.*"]


@dataclass(frozen=True)
class Variant:
    """How NNCF quantizes: weights only or all, the layers kept in float, tuning knobs."""

    weights_only: bool = False
    keep: tuple[str, ...] = ()
    smooth_quant: float = 0.95  # NNCF's alpha for matmuls (ModelType.TRANSFORMER); -1: off
    quantile_ranges: bool = False  # activation ranges from quantiles, not min/max
    full_bias_correction: bool = False


VARIANTS: dict[str, Variant] = {  # see docs/benchmarks/engine.md
    "transformer": Variant(),
    "transformer-keep-both": Variant(keep=(*ATTENTION, *ENDS)),
    "transformer-keep-wide": Variant(keep=(*ATTENTION, *WIDE_ENDS)),
    "transformer-only": Variant(keep=(r"/(?!crosstransformer/).*",)),  # int8 in it alone
    "weights-int8": Variant(weights_only=True, keep=tuple(REWRITE)),
    "weights-int8-keep-ends": Variant(weights_only=True, keep=(*REWRITE, *ENDS)),
    # Quality recovery on top of keep-both (the best full-int8 variant): one knob each.
    "keep-both-sq50": Variant(keep=(*ATTENTION, *ENDS), smooth_quant=0.5),
    "keep-both-no-sq": Variant(keep=(*ATTENTION, *ENDS), smooth_quant=-1),
    "keep-both-quantile": Variant(keep=(*ATTENTION, *ENDS), quantile_ranges=True),
    "keep-both-bias": Variant(keep=(*ATTENTION, *ENDS), full_bias_correction=True),
    # The transformer's matmuls alone cost 0.17 dB: int8 in the U-Net's middle convs only.
    "convs-only": Variant(keep=(r"/crosstransformer/.*", *ENDS)),
    "convs-only-wide": Variant(keep=(r"/crosstransformer/.*", *WIDE_ENDS)),
    # Control: NNCF's whole pipeline with every layer kept in floating point.
    "nothing": Variant(keep=(r".*",)),
}


def quantize(name: str, calibration: list[Float]) -> Path:
    """Quantize the ONNX graph as variant `name`; the OpenVINO IR is cached in WORK.

    Full int8: NNCF's defaults for ModelType.TRANSFORMER (SmoothQuant alpha 0.95 on matmuls,
    fast bias correction) unless the variant says otherwise, every calibration chunk.
    Weights only: per-channel asymmetric int8.
    """
    import nncf
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        AdvancedSmoothQuantParameters,
    )
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    out = WORK / f"{name}.xml"
    if out.is_file():
        return out
    variant = VARIANTS[name]
    scope = nncf.IgnoredScope(patterns=list(variant.keep), validate=False) if variant.keep else None
    model = ov.Core().read_model(str(model_files.verified_path(model_files.HTDEMUCS)))
    if variant.weights_only:
        quantized = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM,
                                          ignored_scope=scope)
    else:
        advanced = AdvancedQuantizationParameters(
            smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=variant.smooth_quant))
        if variant.quantile_ranges:
            advanced.activations_range_estimator_params = RangeEstimatorParametersSet.MEAN_QUANTILE
        quantized = nncf.quantize(
            model, nncf.Dataset(calibration, network_inputs), subset_size=len(calibration),
            model_type=nncf.ModelType.TRANSFORMER, ignored_scope=scope,
            fast_bias_correction=not variant.full_bias_correction,
            advanced_parameters=advanced)
    ov.save_model(quantized, str(out), compress_to_fp16=False)
    return out


class Compiled:
    """One compiled model run as the engine runs HT-Demucs: a chunk in, four sources out."""

    def __init__(self, path: Path, precision: str) -> None:
        properties = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY",
                      "NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": len(os.sched_getaffinity(0))}
        self._compiled = ov.Core().compile_model(str(path), "CPU", properties)
        self._request = self._compiled.create_infer_request()

    def forward(self, inputs: list[Float]) -> list[Float]:
        self._request.infer(inputs)
        return [np.array(self._request.get_output_tensor(i).data) for i in range(2)]

    def __call__(self, chunk: Float) -> Float:
        spectral, temporal = self.forward(network_inputs(chunk))
        out: Float = temporal[0] + dsp.ispec(dsp.unpack_complex(spectral[0]), SEGMENT)
        return out


def sdr_table(model: Compiled, songs: list[dict[str, Float]]) -> list[dict[str, float]]:
    from separation import synth

    scores = []
    for truth in songs:
        mix = np.sum([truth[s] for s in STEMS], axis=0)
        sources = dict(zip(SOURCES, separate_all(model, mix, SEGMENT, len(SOURCES)), strict=True))
        scores.append({s: synth.sdr(truth[s], sources[s]) for s in STEMS})
    return scores


def forward_times(model: Compiled, repeats: int) -> list[tuple[float, float]]:
    """(seconds, 1-minute load average) of `repeats` forwards after a warm-up."""
    inputs = network_inputs(calibration_chunks(8)[1])
    model.forward(inputs)
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.forward(inputs)
        runs.append((time.perf_counter() - started, os.getloadavg()[0]))
    return runs


def interleaved_times(models: dict[str, Compiled], rounds: int) -> dict[str, list[list[float]]]:
    """(seconds, load) per model, the models taking turns each round: a load change hits all."""
    inputs = network_inputs(calibration_chunks(8)[1])
    for model in models.values():
        model.forward(inputs)
    runs: dict[str, list[list[float]]] = {label: [] for label in models}
    for _ in range(rounds):
        for label, model in models.items():
            started = time.perf_counter()
            model.forward(inputs)
            runs[label].append([time.perf_counter() - started, os.getloadavg()[0]])
    return runs


def measure(label: str, path: Path, precision: str, songs: list[dict[str, Float]],
            repeats: int) -> dict[str, Any]:
    """SDR per song and stem and forward times of one model, saved to WORK/<label>.json."""
    out = WORK / f"{label}.json"
    if out.is_file():
        result: dict[str, Any] = json.loads(out.read_text())
        return result
    model = Compiled(path, precision)
    result = {"forward": forward_times(model, repeats), "sdr": sdr_table(model, songs)}
    out.write_text(json.dumps(result))
    return result


def row(label: str, result: dict[str, Any], reference: dict[str, Any]) -> str:
    def mean(r: dict[str, Any], stem: str) -> float:
        return float(np.mean([song[stem] for song in r["sdr"]]))

    deltas = {s: mean(result, s) - mean(reference, s) for s in STEMS}
    overall = float(np.mean(list(deltas.values())))
    passes = min(deltas.values()) >= -STEM_LIMIT and overall >= -MEAN_LIMIT
    seconds = statistics.median(t for t, _ in result["forward"])
    loads = [load for _, load in result["forward"]]
    cells = " | ".join(f"{deltas[s]:+.3f}" for s in STEMS)
    return (f"| {label} | {cells} | {overall:+.3f} | {'yes' if passes else 'no'} |"
            f" {seconds:.2f} s | {min(loads):.1f}-{max(loads):.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--calibration", type=int, default=8, help="calibration songs")
    parser.add_argument("--songs", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bf16", action="store_true", help="also measure OpenVINO bf16")
    parser.add_argument("--rounds", type=int, default=0,
                        help="then time f32, bf16 and the variants taking turns, this many rounds")
    parser.add_argument("--isa", nargs="+", default=["native"], metavar="CAP",
                        help="time under each oneDNN ISA cap (ONEDNN_MAX_CPU_ISA, e.g. AVX2)")
    parser.add_argument("--timing-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.timing_only:  # the child process of timed_under, with its ISA cap set
        timing_table(args.variants, args.rounds)
        return
    songs = benchmark_songs(args.songs)
    onnx_path = model_files.verified_path(model_files.HTDEMUCS)
    reference = measure("f32", onnx_path, "f32", songs, args.repeats)
    results = {"f32": reference}
    if args.bf16:
        results["bf16"] = measure("bf16", onnx_path, "bf16", songs, args.repeats)
    for name in args.variants:
        path = quantize(name, calibration_chunks(args.calibration))
        results[name] = measure(name, path, "f32", songs, args.repeats)
    print(f"{args.songs} songs of {SONG_SECONDS:g} s; mean SDR change against OpenVINO f32, dB")
    print("| model | " + " | ".join(STEMS) + " | mean | within limit | forward | load |")
    print("|---|" + "---|" * (len(STEMS) + 4))
    for label, result in results.items():
        print(row(label, result, reference), flush=True)
    for cap in args.isa if args.rounds else []:
        timed_under(cap, args.variants, args.rounds)


def timed_under(cap: str, variants: list[str], rounds: int) -> None:
    """The timing table in a child process whose oneDNN is capped at `cap` (or not).

    oneDNN reads ONEDNN_MAX_CPU_ISA once, when it starts: each cap needs its own process.
    It caps OpenVINO's oneDNN kernels only; its MLAS f32 matmuls keep the CPU's own ISA.
    """
    env = dict(os.environ)
    if cap != "native":
        env["ONEDNN_MAX_CPU_ISA"] = cap
    print(f"\nISA: {cap}", flush=True)
    child = subprocess.run([sys.executable, "-m", "benchmarks.engine_int8", "--timing-only",
                            "--rounds", str(rounds), "--variants", *variants], env=env)
    if child.returncode:  # under AVX2, OpenVINO's own kernels (not capped) crash the forward
        print(f"the timing process under {cap} ended with {child.returncode}", flush=True)


def product_peaks() -> dict[str, float]:
    """GOP/s of one 2048x2048 matrix product per arithmetic (engine_speed's measurement)."""
    from benchmarks.engine_speed import matmul_peak
    from separation.runtime import Precision

    peaks = {"f32": matmul_peak(Precision.F32), "int8": matmul_peak(Precision.F32, int8=True)}
    try:
        bf16 = matmul_peak(Precision.BF16)
    except RuntimeError:  # bf16 under an ISA cap without it (AVX2)
        return peaks
    if bf16 >= peaks["f32"]:  # else emulated, not native (AVX512_CORE_VNNI)
        peaks["bf16"] = bf16
    return peaks


def timing_table(variants: list[str], rounds: int) -> None:
    peaks = product_peaks()
    print("matrix-product peak (2048x2048): "
          + ", ".join(f"{label} {gops:.0f} GOP/s" for label, gops in peaks.items()), flush=True)
    onnx_path = model_files.verified_path(model_files.HTDEMUCS)
    models = {"f32": Compiled(onnx_path, "f32")}
    if "bf16" in peaks:
        models["bf16"] = Compiled(onnx_path, "bf16")
    models |= {name: Compiled(WORK / f"{name}.xml", "f32") for name in variants}
    if "bf16" in peaks:  # what int8 leaves in floating point, computed in bf16
        models |= {f"{name}+bf16": Compiled(WORK / f"{name}.xml", "bf16") for name in variants}
    runs = interleaved_times(models, rounds)
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "native")
    (WORK / f"timings-{cap}.json").write_text(json.dumps({"peaks": peaks, "runs": runs}))
    print(f"forward per chunk, median of {rounds} rounds taken in turn (1-minute load average)")
    print("| model | forward | min | max | load |")
    print("|---|---|---|---|---|")
    for label, times in runs.items():
        seconds = [t for t, _ in times]
        loads = [load for _, load in times]
        print(f"| {label} | {statistics.median(seconds):.2f} s | {min(seconds):.2f} s |"
              f" {max(seconds):.2f} s | {min(loads):.1f}-{max(loads):.1f} |", flush=True)


if __name__ == "__main__":
    main()
