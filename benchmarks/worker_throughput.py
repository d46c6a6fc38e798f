"""Jobs per hour of the service's worker pool: W workers x T threads on a queue of songs.

The real WorkerPool (service/worker.py) separates a queue of rendered songs, 4 stems to WAV,
once per layout. Each worker is warmed up first with a 1 s clip (a server loads its model
once, at start), then the clock runs from queueing the songs to the last one's end.

    .venv/bin/python benchmarks/worker_throughput.py --songs 4 --seconds 60 --layouts 1x2 2x1
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import numpy as np

from separation import OutputFormat, encode, model_files, synth
from separation.runtime import RuntimeConfig
from service.worker import Outcome, Task, WorkerPool


def song(folder: Path, index: int, seconds: float) -> Path:
    stems = synth.demo_clip(seconds, bpm=90.0 + 10 * index)
    return encode(folder / f"song-{index}.wav", np.sum(list(stems.values()), axis=0),
                  OutputFormat.WAV)


def task(name: str, source: Path, folder: Path) -> Task:
    return Task(job_id=name, attempt=1, source=source, out_dir=folder / name, method=2,
                fmt="wav", max_seconds=3600, max_bytes=1 << 30, abort_file=folder / "abort")


async def layout_rate(workers: int, config: RuntimeConfig, songs: list[Path], folder: Path
                      ) -> float:
    """Songs per hour once every worker has its model loaded."""
    pool = WorkerPool(model_files.model_dir(), workers, config, lambda message: None)
    pool.start()
    try:
        warm = song(folder, 99, 1.0)
        await asyncio.gather(*(pool.run(task(f"warm-{n}", warm, folder))
                               for n in range(workers)))
        started = time.perf_counter()
        outcomes: list[Outcome] = await asyncio.gather(
            *(pool.run(task(f"job-{n}", path, folder)) for n, path in enumerate(songs)))
        elapsed = time.perf_counter() - started
    finally:
        await pool.close()
    failed = [o.error_message for o in outcomes if o.error_code]
    if failed:
        raise SystemExit(f"separation failed: {failed[0]}")
    return len(songs) / elapsed * 3600


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        songs = [song(folder, n, args.seconds) for n in range(args.songs)]
        base = RuntimeConfig.from_env()
        print(f"{args.songs} songs of {args.seconds:g} s, 4 stems, {base.runtime.value}"
              f" {base.precision.value}")
        print("| workers x threads | overlap | songs per hour | audio hours per hour |")
        print("|---|---|---|---|")
        for layout in args.layouts:
            workers, threads = (int(x) for x in layout.split("x"))
            for overlap in args.overlaps or [base.overlap]:
                config = base.with_threads(threads).with_overlap(overlap)
                rate = await layout_rate(workers, config, songs, folder)
                print(f"| {workers} x {threads} | {overlap:g} | {rate:.0f} |"
                      f" {rate * args.seconds / 3600:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--songs", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--layouts", nargs="+", default=["1x2", "2x1"])
    parser.add_argument("--overlaps", type=float, nargs="+", default=None,
                        help="chunk overlaps to compare (default: STEMBOT_OVERLAP's)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
