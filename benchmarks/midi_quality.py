"""Stems to MIDI measured on rendered songs whose notes are known.

    .venv/bin/python -m benchmarks.midi_quality [--songs 6] [--seconds 12] [--split report]
        [--baseline] [--tune] [--speed] [--json out.json]

Each song is training/compose.py's generated song (bass line, piano, 1-3 other instruments,
drums) with a sung stand-in whose notes are known: a melody on General MIDI's Voice Oohs
(espeak-ng's speech, the other benchmarks' voice, has no notes to score). Two splits, never
mixed: `tune` (FluidR3_GM, seed 7070), on which the decodings in separation/midi.py were
chosen, and `report` (the held-out TimGM6mb soundfont, seed 8080), whose numbers the README
quotes. Every song is separated into five stems as a job does (HT-Demucs, then the piano
model), and each pitched stem is transcribed twice: from the separated stem and from the
clean true stem. Notes are scored as mir_eval does (onset within 50 ms, pitch within 50
cents, offsets ignored: `precision_recall_f1_overlap(..., offset_ratio=None)`), summed over
the songs' notes (micro-averaged: each note counts once). `--baseline` also scores Basic
Pitch's own decoding defaults; `--tune` searches the decoding settings on the `tune` split;
`--speed` times one minute of audio per stem in a fresh process and reads its peak memory.

The model's outputs per stem are cached (`--cache`), so decodings are compared in seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from separation import Separator, StemPreset, midi, midi_decoding, model_files
from separation.dsp import Float
from separation.midi import Transcriber
from separation.midi_decoding import Decoding, Posteriors
from separation.midi_file import Note
from separation.runtime import RuntimeConfig
from separation.synth import Part
from separation.tempo import estimate_tempo
from training import compose, data

SAMPLE_RATE = 44_100
PITCHED = ("bass", "piano", "vocals")
SOURCES = ("separated", "true")
VOICE_PROGRAM = 53  # Voice Oohs
SPLITS = {
    "tune": data.Recipe("midi-tune", count=0, seconds=12.0, seed=7070, effects=False,
                        soundfonts=(("FluidR3_GM.sf2", 1.0),)),
    "report": data.Recipe("midi-report", count=0, seconds=12.0, seed=8080, held_out=True,
                          effects=False),
}


@dataclass(slots=True)
class Song:
    bpm: float  # measured from the mix, as a job's facts are
    true_bpm: float
    stems: dict[str, Float]  # vocals, drums, bass, piano, rest
    truth: dict[str, list[Note]]  # the pitched stems' notes in seconds


def seconds_notes(parts: list[Part], bpm: float, seconds: float) -> list[Note]:
    beat = 60.0 / bpm
    out = [Note(n.start * beat, min(seconds, (n.start + n.length) * beat), n.pitch, n.velocity)
           for part in parts for n in part.notes if n.start * beat < seconds - 0.05]
    return sorted(out, key=lambda n: (n.start, n.pitch))


def make_song(split: str, index: int, seconds: float) -> Song:
    """Song `index` of a split: the first arrangement of its seed stream with a piano part."""
    recipe = SPLITS[split]
    attempt = 0
    while True:
        rng = np.random.default_rng([recipe.seed, index, attempt])
        song = compose.generated(rng, seconds)
        if song.piano and song.bass and song.bass.notes:
            break
        attempt += 1
    scale = tuple(48 + song.tonic + s for s in (compose.MINOR if song.minor else compose.MAJOR))
    voice = Part(VOICE_PROGRAM, compose.melody(rng, song.chords, scale, int(rng.integers(55, 64)),
                                               90), channel=1)
    length = round(seconds * SAMPLE_RATE)
    drums = song.drums or Part(0, channel=9)
    stems = {
        "vocals": data.render_group(rng, recipe, [voice], length, song.bpm),
        "drums": data.render_group(rng, recipe, [drums], length, song.bpm),
        "bass": data.render_group(rng, recipe, [song.bass], length, song.bpm),
        "piano": data.render_group(rng, recipe, song.piano, length, song.bpm),
        "rest": data.render_group(rng, recipe, song.others, length, song.bpm),
    }
    mix = np.sum(list(stems.values()), axis=0)
    tempo = estimate_tempo(mix.mean(axis=0))
    truth = {"bass": seconds_notes([song.bass], song.bpm, seconds),
             "piano": seconds_notes(song.piano, song.bpm, seconds),
             "vocals": seconds_notes([voice], song.bpm, seconds)}
    return Song(tempo.bpm if tempo else 0.0, song.bpm, stems, truth)


def note_scores(truth: list[Note], found: list[Note], tolerance: float = 0.05
                ) -> tuple[int, int, int]:
    """(matched, true notes, found notes) as mir_eval matches them."""
    import mir_eval

    if not truth or not found:
        return 0, len(truth), len(found)

    def arrays(notes: list[Note]) -> tuple[Any, Any]:
        intervals = np.array([[n.start, max(n.end, n.start + 0.01)] for n in notes])
        pitches = np.array([440.0 * 2 ** ((n.pitch - 69) / 12) for n in notes])
        return intervals, pitches

    (ref_i, ref_p), (est_i, est_p) = arrays(truth), arrays(found)
    matching = mir_eval.transcription.match_notes(ref_i, ref_p, est_i, est_p,
                                                  onset_tolerance=tolerance, offset_ratio=None)
    return len(matching), len(truth), len(found)


def f1(counts: tuple[int, int, int]) -> dict[str, float]:
    matched, true, found = counts
    precision = matched / found if found else 0.0
    recall = matched / true if true else 0.0
    score = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(score, 3),
            "notes": true}


@dataclass(slots=True)
class Cached:
    """One song's model outputs: (stem, `separated` or `true`) to posteriorgrams."""

    song: Song
    post: dict[tuple[str, str], Posteriors]


def load_songs(split: str, count: int, seconds: float, cache: Path) -> list[Cached]:
    """The split's songs, rendered, separated and run through the note model once."""
    cache.mkdir(parents=True, exist_ok=True)
    separator: Separator | None = None
    transcriber: Transcriber | None = None
    out = []
    for index in range(count):
        file = cache / f"{split}-{index}-{seconds:g}.npz"
        song = make_song(split, index, seconds) if not file.exists() else None
        if file.exists():
            saved = np.load(file, allow_pickle=True)
            meta = json.loads(str(saved["meta"]))
            truth = {stem: [Note(*n) for n in notes] for stem, notes in meta["truth"].items()}
            song = Song(meta["bpm"], meta["true_bpm"], {}, truth)
            post = {(stem, source): Posteriors(saved[f"{stem}.{source}.note"],
                                               saved[f"{stem}.{source}.onset"],
                                               midi.envelope(saved[f"{stem}.{source}.signal"]))
                    for stem in PITCHED for source in ("separated", "true")}
            out.append(Cached(song, post))
            continue
        assert song is not None
        separator = separator or Separator(model_files.model_dir(), RuntimeConfig())
        transcriber = transcriber or Transcriber(RuntimeConfig())
        mix = np.sum(list(song.stems.values()), axis=0)
        separated = separator.separate(mix, StemPreset.FIVE_STEMS)
        post, arrays = {}, {}
        for stem in PITCHED:
            for source, audio in (("separated", separated[stem]), ("true", song.stems[stem])):
                post[stem, source] = transcriber.posteriors(audio)
                arrays[f"{stem}.{source}.note"] = post[stem, source].note
                arrays[f"{stem}.{source}.onset"] = post[stem, source].onset
                arrays[f"{stem}.{source}.signal"] = midi.model_signal(audio)
        meta = {"bpm": song.bpm, "true_bpm": song.true_bpm,
                "truth": {s: [dataclasses.astuple(n) for n in notes]
                          for s, notes in song.truth.items()}}
        np.savez_compressed(file, meta=json.dumps(meta), **arrays)
        print(f"song {split} {index}: {song.true_bpm:.1f} BPM (measured {song.bpm}), "
              f"bass {len(song.truth['bass'])}, piano {len(song.truth['piano'])}, "
              f"vocals {len(song.truth['vocals'])} notes", file=sys.stderr)
        out.append(Cached(song, post))
    return out


def score(songs: list[Cached], stem: str, source: str, decoding: Decoding
          ) -> dict[str, float]:
    total = np.zeros(3, dtype=int)
    for cached in songs:
        found = midi_decoding.decode_notes(cached.post[stem, source], decoding,
                                           cached.song.bpm or None)
        total += note_scores(cached.song.truth[stem], found)
    return f1((int(total[0]), int(total[1]), int(total[2])))


GRID: dict[str, dict[str, list[Any]]] = {
    "bass": {"onset_threshold": [0.3, 0.4, 0.5, 0.6], "frame_threshold": [0.2, 0.3, 0.4],
             "min_seconds": [0.05, 0.07, 0.09, 0.12], "octave_down": [0.0, 0.5, 0.6, 0.7, 0.8],
             "peak_reach": [1, 2, 3, 5], "repeat_ratio": [0.0, 0.6, 0.8, 1.0],
             "shift": [-0.03, -0.02, -0.01, 0.0], "attack": [0.0, 0.04, 0.06, 0.08],
             "snap": [0.0, 0.02, 0.04]},
    "piano": {"onset_threshold": [0.3, 0.4, 0.5, 0.6], "frame_threshold": [0.2, 0.3, 0.4],
              "min_seconds": [0.05, 0.09, 0.128], "melodia": [True, False],
              "peak_reach": [1, 2, 3], "repeat_ratio": [0.0, 0.6, 0.8],
              "shift": [-0.03, -0.02, -0.01, 0.0], "attack": [0.0, 0.03],
              "snap": [0.0, 0.02, 0.04]},
    "vocals": {"onset_threshold": [0.3, 0.4, 0.5], "frame_threshold": [0.2, 0.3, 0.4],
               "min_seconds": [0.05, 0.09, 0.128], "melodia": [True, False],
               "monophonic": [True, False], "peak_reach": [1, 2, 3],
               "repeat_ratio": [0.0, 0.6, 0.8], "shift": [-0.03, -0.02, -0.01, 0.0],
               "attack": [0.0, 0.03, 0.06], "snap": [0.0, 0.02, 0.04]},
}


def tune(songs: list[Cached], stem: str) -> tuple[Decoding, dict[str, float]]:
    """Coordinate search over GRID from the stem's current decoding, twice round, on the mean
    F1 of the separated and the true stems (one decoding serves both)."""
    def both(decoding: Decoding) -> float:
        return sum(score(songs, stem, source, decoding)["f1"] for source in SOURCES) / 2

    best = midi_decoding.decoding_for(stem)
    best_score = both(best)
    for _ in range(2):
        for name, values in GRID[stem].items():
            for value in values:
                candidate = dataclasses.replace(best, **{name: value})
                result = both(candidate)
                if result > best_score:
                    best, best_score = candidate, result
                    print(f"  {stem}: {name}={value} -> mean F1 {result:.3f}", file=sys.stderr)
    return best, {source: score(songs, stem, source, best)["f1"] for source in SOURCES}


def speed(runtime: str, seconds: float = 60.0) -> dict[str, Any]:
    """One minute of each pitched stem (a rendered song looped) in a fresh process, with the
    machine's cores; the model's first call (compiling) is left out of the times."""
    code = (
        "import json,resource,sys,time\n"
        "import numpy as np\n"
        "from benchmarks.midi_quality import make_song\n"
        "from separation.midi import Transcriber\n"
        "from separation.midi_decoding import decode_notes, decoding_for\n"
        "from separation.runtime import RuntimeConfig, RuntimeName\n"
        "song = make_song('tune', 0, 12.0)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"t = Transcriber(RuntimeConfig(runtime=RuntimeName({runtime!r})))\n"
        "t.posteriors(song.stems['bass'][:, :44100])\n"
        "out = {'runtime': t.description}\n"
        f"reps = int(np.ceil({seconds} / 12.0))\n"
        "for stem in ('bass', 'piano', 'vocals'):\n"
        f"    audio = np.tile(song.stems[stem], reps)[:, :round({seconds} * 44100)]\n"
        "    started = time.perf_counter()\n"
        "    post = t.posteriors(audio)\n"
        "    model = time.perf_counter() - started\n"
        "    notes = decode_notes(post, decoding_for(stem), song.bpm)\n"
        "    out[stem] = {'model_s': round(model, 2),\n"
        "                 'decode_s': round(time.perf_counter() - started - model, 2),\n"
        "                 'notes': len(notes)}\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "out['peak_rss_mib'] = round(peak / 1024)\n"
        "out['rss_before_model_mib'] = round(before / 1024)\n"
        "print(json.dumps(out))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                            text=True)
    measured: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    measured["audio_seconds"] = seconds
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--split", choices=list(SPLITS), default="report")
    parser.add_argument("--baseline", action="store_true",
                        help="also score Basic Pitch's default decoding")
    parser.add_argument("--tune", action="store_true",
                        help="search the decodings on the tune split (never on report)")
    parser.add_argument("--speed", action="store_true", help="time one minute per stem")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/stembot-midi-bench"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    report: dict[str, Any] = {"split": args.split, "songs": args.songs,
                              "seconds": args.seconds}
    started = time.perf_counter()
    split = "tune" if args.tune else args.split
    songs = load_songs(split, args.songs, args.seconds, args.cache)
    report["split"] = split
    report["tempo"] = [[round(c.song.true_bpm, 1), c.song.bpm] for c in songs]
    for stem in PITCHED:
        if args.tune:
            decoding, _ = tune(songs, stem)
            report[f"{stem}/decoding"] = dataclasses.asdict(decoding)
        for source in SOURCES:
            chosen = decoding if args.tune else midi_decoding.decoding_for(stem)
            key = f"{stem}/{source}"
            report[key] = {"tuned": score(songs, stem, source, chosen)}
            if args.baseline:
                report[key]["basic_pitch_defaults"] = score(songs, stem, source,
                                                            midi_decoding.BASIC_PITCH)
    if args.speed:
        report["speed"] = [speed(runtime) for runtime in ("openvino", "onnxruntime")]
    report["wall_s"] = round(time.perf_counter() - started, 1)
    report["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
