"""Song facts measured: tempo and key on separated stems of songs whose tempo and key are known.

    .venv/bin/python -m benchmarks.song_facts [--songs 48] [--seconds 30] [--json out.json]

Song i is support/songs.py's generated arrangement (training/compose.py) at 60-180 BPM
(spread by the golden ratio) in key i mod 24 (every tonic, major then minor, twice over 48
songs), with drums, bass, piano or not, 1-3 other instruments and a spoken voice (espeak-ng)
as the vocal, rendered with FluidSynth. The mix goes through the 4-stem engine and the facts
are read from the separated stems, as a job does. Tempo counts right within ±2 %, half or
double separately; key exact, or close (relative, parallel, or a fifth away). Then the
loudness meter against a 1 kHz sine of known level and against essentia's LoudnessEBUR128,
and the time the facts add to the separation of a 3-minute song.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.report import song_line, write_report
from separation import OutputFormat, Separator, StemPreset, encode
from separation.dsp import Float
from separation.essentia_lib import standard
from separation.facts import FactsCollector, SongFacts
from separation.htdemucs import SAMPLE_RATE
from separation.key import Key
from separation.loudness import integrated_loudness
from support.songs import song_stems


def tempo_verdict(truth: float, bpm: float | None) -> str:
    """`right` within ±2 %, `half` or `double` within ±2 % of those, else `wrong`/`unclear`."""
    if bpm is None:
        return "unclear"
    for name, factor in (("right", 1.0), ("half", 0.5), ("double", 2.0)):
        if abs(bpm / (truth * factor) - 1) <= 0.02:
            return name
    return "wrong"


def key_verdict(tonic: int, minor: bool, key: Key | None) -> str:
    """`exact`, `close` (relative, parallel, fifth up or down in the same mode) or `wrong`."""
    if key is None:
        return "unclear"
    if (key.tonic, key.minor) == (tonic, minor):
        return "exact"
    relative = ((tonic + (3 if minor else 9)) % 12, not minor)
    fifths = {((tonic + 7) % 12, minor), ((tonic + 5) % 12, minor)}
    close = {relative, (tonic, not minor), *fifths}
    return "close" if (key.tonic, key.minor) in close else "wrong"


@dataclass(frozen=True, slots=True)
class SongResult:
    index: int
    bpm: float
    key: str
    opening: int  # degree of the first chord: songs that open off the tonic are ambiguous
    found_bpm: float | None
    found_key: str | None
    tempo: str
    key_verdict: str
    separation_seconds: float
    facts_seconds: float
    minor: bool  # the true mode
    relative: bool  # read as the relative key (same notes, other mode): the commonest miss


def measure(separator: Separator, index: int, seconds: float, folder: Path) -> SongResult:
    song, stems = song_stems(index, seconds)
    mix: Float = np.sum(list(stems.values()), axis=0)
    source = encode(folder / f"song-{index}.wav", mix, OutputFormat.WAV_FLOAT)
    facts, separation, spent = separate(separator, source, folder / f"out-{index}")
    truth = Key(song.tonic, song.minor, 1.0)
    return SongResult(
        index, song.bpm, truth.name, song.opening, facts.tempo.bpm if facts.tempo else None,
        facts.key.name if facts.key else None,
        tempo_verdict(song.bpm, facts.tempo.bpm if facts.tempo else None),
        key_verdict(song.tonic, song.minor, facts.key), separation, spent, song.minor,
        facts.key is not None and is_relative(song.tonic, song.minor, facts.key))


def is_relative(tonic: int, minor: bool, key: Key) -> bool:
    """C major read as A minor, or A minor as C major."""
    return (key.tonic, key.minor) == ((tonic + (3 if minor else 9)) % 12, not minor)


def separate(separator: Separator, source: Path, out: Path) -> tuple[SongFacts, float, float]:
    """The job's path: separate_file with a collector; (facts, whole time, facts' share)."""
    collector = FactsCollector(StemPreset.FOUR_STEMS.stems)
    started = time.perf_counter()
    separator.separate_file(source, out, StemPreset.FOUR_STEMS, facts=collector)
    facts = collector.facts()
    return facts, time.perf_counter() - started, collector.seconds


def loudness_checks() -> dict[str, float]:
    """The meter on a −20 dBFS 1 kHz sine (expected −20.00 LUFS in stereo, −23.01 in one
    channel) and on gated noise against essentia's LoudnessEBUR128."""
    t = np.arange(10 * SAMPLE_RATE) / SAMPLE_RATE
    sine = (0.1 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal((2, 60 * SAMPLE_RATE)) * 0.05).astype(np.float32)
    noise[:, : 20 * SAMPLE_RATE] *= 0.02  # a quiet intro the relative gate must drop
    reference = float(standard.LoudnessEBUR128(sampleRate=SAMPLE_RATE)(noise.T.copy())[2])
    return {
        "sine_stereo_lufs": integrated_loudness(np.stack([sine, sine]), SAMPLE_RATE) or 0.0,
        "sine_one_channel_lufs": integrated_loudness(np.stack([sine, 0 * sine]), SAMPLE_RATE)
        or 0.0,
        "noise_lufs": integrated_loudness(noise, SAMPLE_RATE) or 0.0,
        "noise_essentia_lufs": reference,
    }


def long_song_cost(separator: Separator, folder: Path, minutes: float) -> dict[str, float]:
    """A song looped to `minutes`: the separation time and the part the facts took."""
    _, stems = song_stems(1, 30.0)
    mix: Float = np.sum(list(stems.values()), axis=0)
    length = round(minutes * 60 * SAMPLE_RATE)
    looped = np.tile(mix, (1, length // mix.shape[1] + 1))[:, :length]
    source = encode(folder / "long.wav", looped, OutputFormat.WAV_FLOAT)
    _, total, spent = separate(separator, source, folder / "long-out")
    return {"seconds": minutes * 60, "separation_seconds": total, "facts_seconds": spent,
            "facts_share": spent / (total - spent)}


def summary(results: list[SongResult]) -> dict[str, float]:
    """Shares of the verdicts; the key also over the songs whose first chord is the tonic."""
    count = len(results)
    share = {f"tempo_{v}": sum(r.tempo == v for r in results) / count
             for v in ("right", "half", "double", "wrong", "unclear")}
    share |= {f"key_{v}": sum(r.key_verdict == v for r in results) / count
              for v in ("exact", "close", "wrong", "unclear")}
    share["key_exact_or_close"] = share["key_exact"] + share["key_close"]
    for mode, minor in (("major", False), ("minor", True)):
        songs = [r for r in results if r.minor == minor]
        share[f"key_exact_{mode}"] = (
            sum(r.key_verdict == "exact" for r in songs) / len(songs) if songs else 0.0)
    share["key_relative"] = sum(r.relative for r in results) / count
    home = [r for r in results if r.opening == 0]
    share["songs_opening_on_the_tonic"] = len(home)
    share["key_exact_opening_on_the_tonic"] = (
        sum(r.key_verdict == "exact" for r in home) / len(home) if home else 0.0)
    return share


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--songs", type=int, default=48)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--long-minutes", type=float, default=3.0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    separator = Separator()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(args.songs):
            result = measure(separator, index, args.seconds, Path(tmp))
            results.append(result)
            song_line(result)
        cost = long_song_cost(separator, Path(tmp), args.long_minutes)
    report = {"songs": args.songs, "seconds": args.seconds, **summary(results),
              "loudness": loudness_checks(), "long_song": cost}
    write_report(report, results, args.json)


if __name__ == "__main__":
    main()
