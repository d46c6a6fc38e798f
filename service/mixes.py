"""MixJob: a completed job's stems summed with gains, peak-safe, rendered once per mix."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from separation.audio import OutputFormat, decode, encode
from separation.dsp import Float
from separation.presets import shown_name
from separation.stretch import SEMITONE_RANGE, TEMPO_RANGE, stretch
from service.content import ContentStore, check_content_id, clean_path
from service.errors import ContentGone, ContentNotFound, InvalidParameter, JobNotCompleted
from service.protocol import Job, obj, string
from service.quota import StorageQuota
from service.store import MixRecord, Store, now_ms
from wire.enums import TONES, State
from wire.jobs import OutputSpec

MAX_GAIN = 2.0
# name -> (the stem it needs, or "", and the gain of each stem given that name)
PRESETS: dict[str, tuple[str, Callable[[str], float]]] = {
    "instrumental": ("vocals", lambda stem: 0.0 if stem == "vocals" else 1.0),
    "acapella": ("vocals", lambda stem: 1.0 if stem == "vocals" else 0.0),
    "drumless": ("drums", lambda stem: 0.0 if stem == "drums" else 1.0),
    "bassless": ("bass", lambda stem: 0.0 if stem == "bass" else 1.0),
    "pianoless": ("piano", lambda stem: 0.0 if stem == "piano" else 1.0),
}
ALIASES = {"karaoke": "instrumental"}


@dataclass(frozen=True, slots=True)
class Stem:
    name: str  # as people see it: `accompaniment` in two stems
    content_id: str
    path: str


@dataclass(frozen=True, slots=True)
class MixSpec:
    """A validated mixJobRequest: every stem's gain, the format, where it goes."""

    name: str
    gains: dict[str, float]
    fmt: OutputFormat
    content_id: str
    destination: str
    tempo: float = 1.0  # times the song's speed, in whole percent
    semitones: int = 0

    @property
    def digest(self) -> str:
        """The same job, gains, format, tempo and pitch make the same mix, wherever it is
        written; a plain mix's digest is what it was before tempo and pitch existed."""
        fields: dict[str, Any] = {"gains": self.gains, "format": self.fmt.value}
        if self.tempo != 1.0:
            fields["tempo"] = self.tempo
        if self.semitones:
            fields["semitones"] = self.semitones
        text = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def job_stems(job: Job) -> list[Stem]:
    """The stems of the job's first output for its first input, in delivery order."""
    if job.state is not State.COMPLETED or job.publishing:  # its stems are still moving
        raise JobNotCompleted(f"job {job.id!r} is not COMPLETED: it has no stems to mix")
    if job.deleted_at or job.expired_at:  # its mixes and player went with its stems
        why = "were deleted with it" if job.deleted_at else "expired"
        raise ContentGone(f"job {job.id!r}: its files {why}")
    output = job.outputs[0]
    preset = output.method
    prefix = f"{job.id}-{output.selectors[0]}-"
    names = {tone: stem for stem, tone in TONES.items()}
    stems = [Stem(shown_name(preset, names[r.tone]), output.content_id,
                  _join(output.destination, r.file_name))
             for r in output.results or () if r.file_name.startswith(prefix)]
    if not stems:
        raise ContentNotFound(f"job {job.id!r} has no stem files")
    return stems


def _join(destination: str, name: str) -> str:
    folder = clean_path(destination, "destination", root_slash=True)
    return str(PurePosixPath(folder, name)) if folder else name


def parse_gains(raw: Any, stems: list[str], where: str) -> dict[str, float]:
    """Every stem's gain: the ones given, 1 for the others; unknown stems and range refused."""
    given = obj(raw, where)
    gains = dict.fromkeys(stems, 1.0)
    for stem, value in given.items():
        if stem not in gains:
            raise InvalidParameter(f"{where}: unknown stem {stem!r}; this job's stems are"
                                   f" {', '.join(stems)}")
        if (not isinstance(value, int | float) or isinstance(value, bool)
                or not math.isfinite(value) or not 0 <= value <= MAX_GAIN):
            raise InvalidParameter(f"{where}.{stem} must be a number from 0 to {MAX_GAIN:g}"
                                   " (a linear gain)")
        gains[stem] = float(value)
    return gains


def preset_gains(name: str, stems: list[str], where: str) -> tuple[str, dict[str, float]]:
    canonical = ALIASES.get(name, name)
    if canonical not in PRESETS:
        known = ", ".join([*PRESETS, *ALIASES])
        raise InvalidParameter(f"{where} must be one of {known}, not {name!r}")
    needs, gain = PRESETS[canonical]
    if needs not in stems:
        raise InvalidParameter(f"{where} {name!r} needs a {needs} stem; this job's stems are"
                               f" {', '.join(stems)}")
    return canonical, {stem: float(gain(stem)) for stem in stems}


def mix_name(gains: dict[str, float], digest: str, tempo: float = 1.0, semitones: int = 0
             ) -> str:
    """The preset these gains are, else `custom-` and the start of the digest; then the
    tempo and pitch where they change (`drumless-80pct-minus2`)."""
    name = next((name for name, (needs, gain) in PRESETS.items()
                 if needs in gains and all(gains[s] == gain(s) for s in gains)),
                f"custom-{digest[:8]}")
    if tempo != 1.0:
        name += f"-{round(tempo * 100)}pct"
    if semitones:
        name += f"-{'plus' if semitones > 0 else 'minus'}{abs(semitones)}"
    return name


def parse_tempo(value: object, where: str) -> float:
    """0.5-1.5 in whole percent (a name tells the mix apart by its percent)."""
    low, high = TEMPO_RANGE
    if (not isinstance(value, int | float) or isinstance(value, bool)
            or not math.isfinite(value) or not low <= value <= high
            or abs(value * 100 - round(value * 100)) > 1e-9):
        raise InvalidParameter(f"{where} must be a number from {low:g} to {high:g} in steps"
                               " of 0.01 (1 is the song's own speed)")
    return round(value * 100) / 100


def parse_semitones(value: object, where: str) -> int:
    low, high = SEMITONE_RANGE
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or value != int(value) or not low <= value <= high):
        raise InvalidParameter(f"{where} must be a whole number from {low} to {high}")
    return int(value)


def parse_mix(body: dict[str, Any], stems: list[Stem], output: OutputSpec,
              default_format: OutputFormat) -> MixSpec:
    """A mixJobRequest's `gains` or `preset` (exactly one), `format`, `contentId`, `destination`."""
    names = [s.name for s in stems]
    if ("gains" in body) == ("preset" in body):
        raise InvalidParameter("mixJobRequest needs exactly one of gains or preset")
    if "preset" in body:
        _, gains = preset_gains(string(body, "preset", "mixJobRequest.preset"), names,
                                "mixJobRequest.preset")
    else:
        gains = parse_gains(body["gains"], names, "mixJobRequest.gains")
    fmt = parse_output_format(string(body, "format", "mixJobRequest.format",
                                     default_format.value), "mixJobRequest.format")
    content_id = check_content_id(string(body, "contentId", "mixJobRequest.contentId",
                                         output.content_id), "mixJobRequest.contentId")
    destination = clean_path(string(body, "destination", "mixJobRequest.destination",
                                    output.destination), "mixJobRequest.destination",
                             root_slash=True)
    tempo = parse_tempo(body.get("tempo", 1.0), "mixJobRequest.tempo")
    semitones = parse_semitones(body.get("semitones", 0), "mixJobRequest.semitones")
    check_stretch(tempo, semitones, "mixJobRequest")
    return make_spec(gains, fmt, content_id, destination, tempo, semitones)


def check_stretch(tempo: float, semitones: int, where: str) -> None:
    """Refuse a tempo or pitch change now, with nothing made, where Rubber Band is missing."""
    if (tempo != 1.0 or semitones) and shutil.which("rubberband") is None:
        raise InvalidParameter(f"{where}: this server cannot change tempo or pitch (Rubber"
                               " Band, Debian's rubberband-cli, is not installed)")


def make_spec(gains: dict[str, float], fmt: OutputFormat, content_id: str, destination: str,
              tempo: float = 1.0, semitones: int = 0) -> MixSpec:
    """The spec, named after the preset its gains are, if any, and its tempo and pitch."""
    unnamed = MixSpec("", gains, fmt, content_id, destination, tempo, semitones)
    return dataclasses.replace(unnamed, name=mix_name(gains, unnamed.digest, tempo, semitones))


def parse_output_format(value: str, where: str) -> OutputFormat:
    try:
        return OutputFormat(value.lower())
    except ValueError:
        known = ", ".join(f.value for f in OutputFormat)
        raise InvalidParameter(f"{where} must be one of {known}, not {value!r}") from None


# --- rendering: in a thread, the event loop never decodes ---------------------------------


def render(sources: list[tuple[Path, float]], target: Path, fmt: OutputFormat,
           tempo: float = 1.0, semitones: int = 0) -> None:
    """Sum the stems with their gains, then change tempo and pitch (Rubber Band); a peak over
    1.0 (0 dBFS), before or after, scales the whole mix down to exactly 1.0, so nothing is
    clipped and the balance is what was asked."""
    total = under_full_scale(stretch(mixed(sources), tempo, semitones))
    encode(target, total, fmt)


def under_full_scale(audio: Float) -> Float:
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return audio / np.float32(peak) if peak > 1.0 else audio


def mixed(sources: list[tuple[Path, float]]) -> Float:
    """Float32 sum in stem order, trimmed to the shortest stem (lossy codecs may add a frame)."""
    stems = [(decode(path), gain) for path, gain in sources]
    length = min(audio.shape[1] for audio, _ in stems)
    total = np.zeros((2, length), dtype=np.float32)
    for audio, gain in stems:
        total += audio[:, :length] * np.float32(gain)
    return under_full_scale(total)


def mix_file_name(job: Job, spec: MixSpec) -> str:
    """`JOB-INPUT-mix-NAME.EXT`; wav and wav-float share an extension: the name keeps them
    apart."""
    kind = "-float" if spec.fmt is OutputFormat.WAV_FLOAT else ""
    return f"{job.id}-{job.outputs[0].selectors[0]}-mix-{spec.name}{kind}.{spec.fmt.extension}"


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


class Mixer:
    """Renders mixes for a service; one at a time per mix, so a mix asked twice at once is
    rendered once too."""

    def __init__(self, store: Store, content: ContentStore, quota: StorageQuota) -> None:
        self._store = store
        self._content = content
        self._quota = quota
        self._locks: dict[str, asyncio.Lock] = {}

    async def mix(self, job: Job, stems: list[Stem], spec: MixSpec) -> MixRecord:
        lock = self._locks.setdefault(f"{job.id}:{spec.digest}", asyncio.Lock())
        async with lock:
            return await self._mix(job, stems, spec)

    async def _mix(self, job: Job, stems: list[Stem], spec: MixSpec) -> MixRecord:
        content = self._content
        await content.writable(job.owner, spec.content_id)
        name = mix_file_name(job, spec)
        rel = str(PurePosixPath(spec.destination, name)) if spec.destination else name
        earlier = await self._store.mixes_of(job.id, spec.digest)
        for record in earlier:
            if (record.content_id, record.path) == (spec.content_id, rel) and \
                    await content.exists(record.content_id, record.path):
                return record
        await content.check_writable(spec.content_id, rel, folder=False,
                                     name="mixJobRequest.destination")
        part = content.scratch_file(f".{spec.fmt.extension}")
        try:
            await self._write(job, stems, spec, earlier, part)
            await content.put_file(spec.content_id, rel, part,
                                   name="mixJobRequest.destination")
        finally:
            await asyncio.to_thread(part.unlink, True)
        record = MixRecord(job.id, spec.digest, spec.name, spec.gains, spec.fmt.value,
                           spec.content_id, rel, now_ms())
        await self._store.add_mix(record)
        return record

    async def _write(self, job: Job, stems: list[Stem], spec: MixSpec,
                     earlier: list[MixRecord], part: Path) -> None:
        """The mix into `part`: a copy of the same mix written elsewhere, else rendered."""
        content = self._content
        async with self._quota.reserve(job.owner, "this mix") as add:
            for record in earlier:
                if await content.exists(record.content_id, record.path):
                    async with content.local_files([(record.content_id, record.path)]) as [f]:
                        await asyncio.to_thread(_copy, f, part)
                    break
            else:
                await self.render(stems, spec, part)
            add(await asyncio.to_thread(lambda: part.stat().st_size))

    async def render(self, stems: list[Stem], spec: MixSpec, target: Path) -> None:
        """The mix rendered into `target` (in a thread), stored nowhere."""
        content = self._content
        for s in stems:
            await content.existing_file(s.content_id, s.path)
        async with content.local_files([(s.content_id, s.path) for s in stems]) as files:
            await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
            await asyncio.to_thread(
                render, list(zip(files, [spec.gains[s.name] for s in stems], strict=True)),
                target, spec.fmt, spec.tempo, spec.semitones)
