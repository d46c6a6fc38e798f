"""The separation engine: one loaded model, any audio file in, stem files out."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from separation import audio, model_files, piano
from separation.apply import Progress, shift_offsets, stream_shifted
from separation.audio import AudioWriter, Limits, OutputFormat
from separation.dsp import Float
from separation.errors import ModelNotInstalledError
from separation.htdemucs import SAMPLE_RATE, SEGMENT, SOURCES, HTDemucs
from separation.mix_source import MixSource, StreamedMix
from separation.presets import MAX_SHIFTS, StemPreset, shown_name
from separation.runtime import RuntimeConfig

if TYPE_CHECKING:  # essentia and scipy load only where facts are collected
    from separation.facts import FactsCollector

MAX_SHIFT = SAMPLE_RATE // 2  # Demucs' shifts: random delays of up to half a second

Stems = dict[str, Float]


def to_preset(sources: Float, preset: StemPreset) -> Stems:
    """Name the four network sources [4, 2, n] and fold them into the preset's stems."""
    named = dict(zip(SOURCES, sources, strict=True))
    if preset is StemPreset.TWO_STEMS:
        return {"vocals": named["vocals"], "other": named["drums"] + named["bass"] + named["other"]}
    return {stem: named[stem] for stem in StemPreset.FOUR_STEMS.stems}


class Separator:
    """Loads the models once; separates arrays or files into the stems of a preset."""

    def __init__(self, folder: Path | None = None, config: RuntimeConfig | None = None) -> None:
        self._folder = folder or model_files.model_dir()
        self._config = config or RuntimeConfig()
        self._demucs = HTDemucs(
            model_files.verified_path(model_files.HTDEMUCS, self._folder),
            model_files.htdemucs_parts(self._folder),
            self._config,
        )
        self._piano: piano.PianoModel | None = None

    @property
    def description(self) -> str:
        """The runtime and precision the 4-stem network runs on, e.g. `openvino bf16`."""
        return self._demucs.description

    def check(self, preset: StemPreset) -> None:
        """Raise a clear error now if the preset needs a model that is not installed."""
        if preset is StemPreset.FIVE_STEMS:
            self._piano_model()

    def _piano_model(self) -> piano.PianoModel:
        """The piano model, loaded on first use; 5 stems need it, 2 and 4 never load it."""
        if self._piano is None:
            path = self._folder / model_files.PIANO_MODEL_NAME
            if not path.is_file():
                raise ModelNotInstalledError("5 stems: piano model not installed")
            self._piano = piano.PianoModel(path, self._config)
        return self._piano

    def stream(
        self, mix: Float | MixSource, preset: StemPreset, progress: Progress | None = None,
        shifts: int = 1,
    ) -> Iterator[Stems]:
        """Yield consecutive blocks of every stem; memory stays flat whatever the length.

        `shifts` > 1 averages that many separations of randomly delayed copies (Demucs' shifts).
        """
        self.check(preset)
        check_shifts(shifts)
        offsets = shift_offsets(shifts, MAX_SHIFT) if shifts > 1 else [0]
        sources = stream_shifted(
            self._demucs, mix, SEGMENT, len(SOURCES), offsets, MAX_SHIFT, progress,
            self._config.overlap,
        )
        blocks: Iterator[Stems] = (to_preset(block, preset) for block in sources)
        if preset is StemPreset.FIVE_STEMS:
            # the piano step holds back ~6 s plus its context, then keeps pace with the blocks
            blocks = piano.five_stems(blocks, self._piano_model())
        yield from blocks

    def separate(
        self, mix: Float, preset: StemPreset, progress: Progress | None = None, shifts: int = 1
    ) -> Stems:
        """Separate a whole [2, n] array at once; for short audio and tests."""
        blocks = list(self.stream(mix, preset, progress, shifts))
        if not blocks:
            return {stem: np.zeros_like(mix) for stem in preset.stems}
        return {stem: np.concatenate([b[stem] for b in blocks], axis=-1) for stem in preset.stems}

    def separate_file(
        self,
        source: Path,
        out_dir: Path,
        preset: StemPreset,
        fmt: OutputFormat = OutputFormat.WAV,
        *,
        bitrate: int = 320_000,
        limits: Limits | None = None,
        progress: Progress | None = None,
        shifts: int = 1,
        facts: FactsCollector | None = None,
    ) -> dict[str, Path]:
        """Decode `source` and write `out_dir/<shown stem name>.<ext>`; nothing is left behind on
        failure. A `facts` collector sees the mix and every block on the way (the song's facts).
        """
        self.check(preset)
        mix = self._streamed(source, limits, facts)
        out_dir.mkdir(parents=True, exist_ok=True)
        final = {stem: out_dir / f"{shown_name(preset, stem)}.{fmt.extension}"
                 for stem in preset.stems}
        partial = {stem: path.with_name(f".{path.name}.part") for stem, path in final.items()}
        with contextlib.ExitStack() as stack:
            writers = {
                stem: stack.enter_context(AudioWriter(path, fmt, bitrate))
                for stem, path in partial.items()
            }
            try:
                for block in self.stream(mix, preset, progress, shifts):
                    for stem, samples in block.items():
                        writers[stem].write(samples)
                    if facts is not None:
                        facts.add(block)
            except BaseException:
                stack.close()
                for path in partial.values():
                    path.unlink(missing_ok=True)
                raise
        for stem, path in partial.items():
            os.replace(path, final[stem])
        return final


    @staticmethod
    def _streamed(source: Path, limits: Limits | None, facts: FactsCollector | None
                  ) -> StreamedMix:
        """The file checked and counted (and the mix measured) in a first decode, then decoded
        again as inference reads it: a long song is never in memory whole (10 min = 212 MB)."""
        length = audio.count_samples(source, limits, facts.add_mix if facts else None)
        if facts is not None:
            facts.start(length)
        # chunks move forward; the last one and shifted copies look back at most a segment
        keep = 2 * SEGMENT + MAX_SHIFT
        return StreamedMix(lambda: audio.decoded_blocks(source, limits), audio.CHANNELS,
                           length, keep)


def check_shifts(shifts: int) -> None:
    """Shifts multiply the separation time: 1 (off) up to MAX_SHIFTS."""
    if not 1 <= shifts <= MAX_SHIFTS:
        raise ValueError(f"shifts must be between 1 and {MAX_SHIFTS}, not {shifts}")


def peak(stems: Stems) -> float:
    """Largest absolute sample over all stems."""
    return max(float(np.abs(s).max(initial=0.0)) for s in stems.values())
