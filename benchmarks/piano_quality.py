"""Piano quality through the whole 5-stem pipeline, on songs the piano model never heard.

    .venv/bin/python -m benchmarks.piano_quality [--clips 8] [--seconds 12]

Each clip is a generated song (vocals from espeak-ng, drums, bass, piano, 1-3 other
instruments) rendered only with the held-out soundfont. Mixture -> HT-Demucs -> piano
model. Piano and the rest of `other` are set to equal energy. Global SDR of piano and of
the new other against the baselines `other as piano` (the 4-stem `other`, unsplit) and
silence (0 dB); the ceiling of any mask on that `other`; and the time the piano step adds.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from separation import Separator, StemPreset, decode, dsp, model_files, synth
from separation.dsp import Float
from separation.piano import HOP, N_FFT, PianoModel
from training import compose, data
from training.instruments import HELD_OUT_SOUNDFONT

EVAL = data.Recipe("benchmark", count=0, seconds=12.0, seed=2026, held_out=True, effects=False)


@dataclass(frozen=True, slots=True)
class ClipResult:
    piano_sdr: float
    piano_sdr_other_as_piano: float
    other_sdr: float
    other_sdr_unsplit: float
    piano_sdr_oracle_other: float  # the piano model on the true `other`: HT-Demucs left out
    piano_sdr_best_mask: float  # the ceiling: the best [0, 1] mask on the 4-stem `other`
    four_stem_seconds: float
    piano_seconds: float


def song_with_piano(index: int, seconds: float) -> tuple[compose.Arrangement, np.random.Generator]:
    """The first generated song from this clip's seed stream that has a piano part."""
    attempt = 0
    while True:
        rng = np.random.default_rng([EVAL.seed, index, attempt])
        song = compose.generated(rng, seconds)
        if song.piano:
            return song, rng
        attempt += 1


def clip(index: int, seconds: float) -> dict[str, Float]:
    """Known stems of one clip: vocals, drums, bass, piano, rest (the non-piano `other`)."""
    song, rng = song_with_piano(index, seconds)
    length = round(seconds * 44_100)
    drums = song.drums or synth.Part(0, channel=synth.DRUM_CHANNEL)
    bass = song.bass or synth.Part(33)
    stems = {
        "drums": data.render_group(rng, EVAL, [drums], length, song.bpm),
        "bass": data.render_group(rng, EVAL, [bass], length, song.bpm),
        "piano": data.render_group(rng, EVAL, song.piano, length, song.bpm),
        "rest": data.render_group(rng, EVAL, song.others, length, song.bpm),
    }
    # piano and the rest of `other` at equal energy: neither baseline is favoured by the mix
    energy = np.sum(stems["piano"].astype(np.float64) ** 2) / np.sum(stems["rest"] ** 2.0)
    stems["rest"] = (stems["rest"] * np.sqrt(energy)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        voice = decode(
            synth.speak(synth.BARS_TEXT, Path(tmp) / "v.wav", pitch=int(rng.integers(30, 80)))
        )
    reps = length // voice.shape[1] + 1
    stems["vocals"] = synth.fit(np.tile(voice, reps) * np.float32(rng.uniform(0.3, 0.6)), length)
    return stems


def best_mask_piano(piano: Float, other: Float) -> Float:
    """What the best mask in [0, 1] on `other`'s STFT gives, knowing the true piano.

    Per bin, the real gain that brings `other` closest to the piano is the projection
    Re(P·conj(Z)) / |Z|², clipped to the mask's range. No mask model can beat this on SDR
    (up to STFT consistency): piano that HT-Demucs put into another stem is out of reach.
    """
    z, target = dsp.stft(other, N_FFT, HOP), dsp.stft(piano, N_FFT, HOP)
    gain = np.clip(np.real(target * np.conj(z)) / (np.abs(z) ** 2 + 1e-12), 0.0, 1.0)
    return dsp.istft((z * gain).astype(np.complex64), other.shape[-1], HOP)


def measure(separator: Separator, model: PianoModel, stems: dict[str, Float]) -> ClipResult:
    mix: Float = np.sum(list(stems.values()), axis=0)
    started = time.perf_counter()
    four = separator.separate(mix, StemPreset.FOUR_STEMS)
    four_seconds = time.perf_counter() - started
    started = time.perf_counter()
    piano = model.piano(four["other"])
    piano_seconds = time.perf_counter() - started
    new_other = four["other"] - piano
    true_other = stems["piano"] + stems["rest"]
    return ClipResult(
        piano_sdr=synth.sdr(stems["piano"], piano),
        piano_sdr_other_as_piano=synth.sdr(stems["piano"], four["other"]),
        other_sdr=synth.sdr(stems["rest"], new_other),
        other_sdr_unsplit=synth.sdr(stems["rest"], four["other"]),
        piano_sdr_oracle_other=synth.sdr(stems["piano"], model.piano(true_other)),
        piano_sdr_best_mask=synth.sdr(
            stems["piano"], best_mask_piano(stems["piano"], four["other"])
        ),
        four_stem_seconds=four_seconds,
        piano_seconds=piano_seconds,
    )


def summary(results: list[ClipResult]) -> dict[str, float]:
    """Means over clips; the time share is total piano time over total 4-stem time."""
    out = {k: float(np.mean([getattr(r, k) for r in results])) for k in asdict(results[0])}
    out["silence_sdr"] = 0.0
    out["piano_time_share"] = sum(r.piano_seconds for r in results) / sum(
        r.four_stem_seconds for r in results
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--model-dir", type=Path, default=model_files.model_dir())
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    separator = Separator(args.model_dir)
    model = PianoModel(args.model_dir / model_files.PIANO_MODEL_NAME)
    results = []
    for index in range(args.clips):
        result = measure(separator, model, clip(index, args.seconds))
        results.append(result)
        print(f"clip {index}: " + ", ".join(f"{k} {v:.2f}" for k, v in asdict(result).items()))
    report = {"soundfont": HELD_OUT_SOUNDFONT, "clips": args.clips, "seconds": args.seconds}
    report.update(summary(results))
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"summary": report, "clips": [asdict(r) for r in results]}))


if __name__ == "__main__":
    main()
