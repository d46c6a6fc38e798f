"""The separation engine: one loaded model, any audio file in, stem files out."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from separation import audio, model_files, piano
from separation.apply import Progress, separate_all, stream_chunks
from separation.audio import AudioWriter, Limits, OutputFormat
from separation.dsp import Float
from separation.errors import ModelNotInstalledError
from separation.htdemucs import SEGMENT, SOURCES, HTDemucs
from separation.presets import StemPreset

Stems = dict[str, Float]


def to_preset(sources: Float, preset: StemPreset) -> Stems:
    """Name the four network sources [4, 2, n] and fold them into the preset's stems."""
    named = dict(zip(SOURCES, sources, strict=True))
    if preset is StemPreset.TWO_STEMS:
        return {"vocals": named["vocals"], "other": named["drums"] + named["bass"] + named["other"]}
    return {stem: named[stem] for stem in StemPreset.FOUR_STEMS.stems}


class Separator:
    """Loads the models once; separates arrays or files into the stems of a preset."""

    def __init__(self, folder: Path | None = None, threads: int | None = None) -> None:
        self._folder = folder or model_files.model_dir()
        self._threads = threads
        self._demucs = HTDemucs(model_files.htdemucs_parts(self._folder), threads)
        self._piano: piano.PianoModel | None = None

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
            self._piano = piano.PianoModel(path, self._threads)
        return self._piano

    def stream(
        self, mix: Float, preset: StemPreset, progress: Progress | None = None
    ) -> Iterator[Stems]:
        """Yield consecutive blocks of every stem; memory stays flat whatever the length."""
        self.check(preset)
        blocks: Iterator[Stems] = (
            to_preset(block, preset)
            for block in stream_chunks(self._demucs, mix, SEGMENT, len(SOURCES), progress)
        )
        if preset is StemPreset.FIVE_STEMS:
            # the piano step holds back ~6 s plus its context, then keeps pace with the blocks
            blocks = piano.five_stems(blocks, self._piano_model())
        yield from blocks

    def separate(self, mix: Float, preset: StemPreset, progress: Progress | None = None) -> Stems:
        """Separate a whole [2, n] array at once; for short audio and tests."""
        self.check(preset)
        stems = to_preset(separate_all(self._demucs, mix, SEGMENT, len(SOURCES), progress), preset)
        if preset is StemPreset.FIVE_STEMS:
            return piano.split(stems, self._piano_model().piano(stems["other"]))
        return stems

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
    ) -> dict[str, Path]:
        """Decode `source` and write `out_dir/<stem>.<ext>`; nothing is left behind on failure."""
        self.check(preset)
        mix = audio.decode(source, limits)
        out_dir.mkdir(parents=True, exist_ok=True)
        final = {stem: out_dir / f"{stem}.{fmt.extension}" for stem in preset.stems}
        partial = {stem: path.with_name(f".{path.name}.part") for stem, path in final.items()}
        with contextlib.ExitStack() as stack:
            writers = {
                stem: stack.enter_context(AudioWriter(path, fmt, bitrate))
                for stem, path in partial.items()
            }
            try:
                for block in self.stream(mix, preset, progress):
                    for stem, samples in block.items():
                        writers[stem].write(samples)
            except BaseException:
                stack.close()
                for path in partial.values():
                    path.unlink(missing_ok=True)
                raise
        for stem, path in partial.items():
            os.replace(path, final[stem])
        return final


def peak(stems: Stems) -> float:
    """Largest absolute sample over all stems."""
    return max(float(np.abs(s).max(initial=0.0)) for s in stems.values())
