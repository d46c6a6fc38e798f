"""`stembot separate`: split one audio file into stem files."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from separation import Limits, OutputFormat, SeparationError, Separator, StemPreset
from separation.apply import DEFAULT_OVERLAP
from separation.fact_line import line
from separation.presets import MAX_SHIFTS, STEM_COUNTS
from separation.runtime import RuntimeConfig
from stembot.settings import EngineSettings

if TYPE_CHECKING:
    from separation.facts import FactsCollector

MIDI_STEMS = ("vocals", "bass", "piano")  # the pitched stems CreateMidi also makes by default


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "separate",
        help="separate an audio file into stems",
        description="Separate INPUT (mp3, wav, flac, ogg, opus, m4a, ...) into DIR/<stem>.<ext>.",
    )
    parser.add_argument("input", type=Path, metavar="INPUT", help="audio file to separate")
    parser.add_argument(
        "--stems",
        type=int,
        choices=STEM_COUNTS,
        default=4,
        help="2: vocals/other, 4: vocals/drums/bass/other, 5: adds piano (default: 4)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("separated"),
        metavar="DIR",
        help="output folder (default: ./separated)",
    )
    parser.add_argument(
        "--format",
        dest="fmt",
        choices=[f.value for f in OutputFormat],
        default=OutputFormat.WAV.value,
        help="stem file format (default: wav)",
    )
    parser.add_argument(
        "--bitrate",
        type=int,
        default=320,
        metavar="KBPS",
        help="bitrate for mp3 and opus in kbit/s (default: 320)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="inference threads (default: all available cores)"
    )
    parser.add_argument(
        "--shifts",
        type=int,
        choices=range(1, MAX_SHIFTS + 1),
        default=1,
        metavar="N",
        help=f"average N randomly shifted separations: better, N times slower (1-{MAX_SHIFTS},"
        " default: 1)",
    )
    parser.add_argument(
        "--overlap",
        type=float,
        default=None,
        metavar="SHARE",
        help="share of each 7.8 s chunk its neighbours also cover, 0-0.5: more is a little"
        " smoother at chunk edges and slower (default: STEMBOT_OVERLAP or"
        f" {DEFAULT_OVERLAP:g})",
    )
    parser.add_argument(
        "--midi",
        action="store_true",
        help="also write the bass, piano and vocals stems' notes as DIR/<stem>.mid, at the"
        " song's tempo (drums are not pitched)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (stems written, song facts) instead of text, for scripts",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = EngineSettings.from_env()
    preset = StemPreset.from_count(args.stems)
    bar = _ProgressBar()
    try:
        config = RuntimeConfig.from_env().with_threads(args.threads).with_overlap(args.overlap)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        paths, facts = separate(args, settings, config, preset, bar)
        bar.close()
        song = facts.facts().wire()
        midi = write_midi(paths, song, config) if args.midi else {}
    except SeparationError as error:
        bar.close()
        print(f"error: {error}", file=sys.stderr)
        return 1
    report(args, paths, song, midi)
    return 0


def separate(args: argparse.Namespace, settings: EngineSettings, config: RuntimeConfig,
             preset: StemPreset, bar: _ProgressBar) -> tuple[dict[str, Path], FactsCollector]:
    """The stem files, and the facts collected on the way. The model is released on return:
    the facts' last step (essentia, ~150 MB) then runs without its ~1 GB beside it."""
    with ThreadPoolExecutor(1) as pool:
        # the facts' imports (scipy) run while OpenVINO loads the model without the GIL; the
        # model loads in this thread, so its buffers stay in the main thread's malloc arena
        importing = pool.submit(importlib.import_module, "separation.facts")
        separator = Separator(settings.model_dir, config)
        facts: FactsCollector = importing.result().FactsCollector(preset.stems)
    separator.check(preset)
    paths = separator.separate_file(
        args.input,
        args.out,
        preset,
        OutputFormat(args.fmt),
        bitrate=args.bitrate * 1000,
        limits=Limits(max_seconds=settings.max_seconds, max_bytes=settings.max_bytes),
        progress=bar.update,
        shifts=args.shifts,
        facts=facts,
    )
    return paths, facts


def write_midi(paths: dict[str, Path], facts: dict[str, Any], config: RuntimeConfig
               ) -> dict[str, Path]:
    """The pitched stems' notes beside them (`bass.mid` next to `bass.wav`), at the tempo the
    song facts measured (120 BPM where there was none)."""
    from separation.midi import Transcriber

    transcriber = Transcriber(config)
    bpm = facts["tempo"]["bpm"] if facts.get("tempo") else None
    written = {}
    for stem in [s for s in MIDI_STEMS if s in paths]:
        bar = _ProgressBar(f"MIDI {stem}", "window")
        target = paths[stem].with_suffix(".mid")
        try:
            transcriber.transcribe_file(paths[stem], target, stem, bpm, bar.update)
        finally:
            bar.close()
        written[stem] = target
    return written


def report(args: argparse.Namespace, paths: dict[str, Path], facts: dict[str, Any],
           midi: dict[str, Path]) -> None:
    """The stems, MIDI files and song facts, as text or (`--json`) as one JSON object."""
    if args.json:
        stems = {stem: str(path) for stem, path in paths.items()}
        out: dict[str, Any] = {"stems": stems, "facts": facts}
        if args.midi:
            out["midi"] = {stem: str(path) for stem, path in midi.items()}
        print(json.dumps(out, ensure_ascii=False))
        return
    print(f"{len(paths)} stems written to {args.out}/")
    for path in paths.values():
        print(f"  {path}")
    if args.midi:
        print(f"{len(midi)} MIDI files: " + (", ".join(str(p) for p in midi.values())
                                              or "none (no bass, piano or vocals stem)"))
    print(line(facts))


class _ProgressBar:
    """A chunk progress bar that appears only once decoding has succeeded."""

    def __init__(self, desc: str = "separating", unit: str = "chunk") -> None:
        self._bar: tqdm[None] | None = None
        self._desc, self._unit = desc, unit

    def update(self, done: int, total: int) -> None:
        if self._bar is None:
            self._bar = tqdm(total=total, unit=self._unit, desc=self._desc, leave=False)
        self._bar.n = done
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
