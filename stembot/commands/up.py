"""`stembot up`: the main job on the embedded defaults."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from separation import OutputFormat, SeparationError, Separator, StemPreset, encode, synth
from stembot.settings import EngineSettings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "up", help="run stembot on the embedded defaults",
        description="Render a short demo clip and separate it into four stems.",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = EngineSettings.from_env()
    demo = settings.data_dir / "demo"
    demo.mkdir(parents=True, exist_ok=True)
    mix_path = demo / "demo-mix.wav"
    print("rendering a 10 s demo clip (FluidSynth + espeak-ng)...")
    encode(mix_path, sum(synth.demo_clip(10.0).values()), OutputFormat.WAV)
    try:
        separator = Separator(settings.model_dir)
        started = time.monotonic()
        paths = separator.separate_file(mix_path, demo / "stems", StemPreset.FOUR_STEMS)
    except SeparationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"separated {mix_path} in {time.monotonic() - started:.1f} s:")
    for path in paths.values():
        print(f"  {Path(path)}")
    return 0
