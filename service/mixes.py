"""MixJob: a completed job's stems summed with gains, peak-safe, rendered once per mix."""

from __future__ import annotations

import asyncio
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

    @property
    def digest(self) -> str:
        """The same job, gains and format make the same mix, wherever it is written."""
        text = json.dumps({"gains": self.gains, "format": self.fmt.value}, sort_keys=True)
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


def mix_name(gains: dict[str, float], digest: str) -> str:
    """The preset these gains are, else `custom-` and the start of the digest."""
    for name, (needs, gain) in PRESETS.items():
        if needs in gains and all(gains[s] == gain(s) for s in gains):
            return name
    return f"custom-{digest[:8]}"


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
    return make_spec(gains, fmt, content_id, destination)


def make_spec(gains: dict[str, float], fmt: OutputFormat, content_id: str, destination: str
              ) -> MixSpec:
    """The spec, named after the preset its gains are, if any."""
    unnamed = MixSpec("", gains, fmt, content_id, destination)
    return MixSpec(mix_name(gains, unnamed.digest), gains, fmt, content_id, destination)


def parse_output_format(value: str, where: str) -> OutputFormat:
    try:
        return OutputFormat(value.lower())
    except ValueError:
        known = ", ".join(f.value for f in OutputFormat)
        raise InvalidParameter(f"{where} must be one of {known}, not {value!r}") from None


# --- rendering: in a thread, the event loop never decodes ---------------------------------


def render(sources: list[tuple[Path, float]], target: Path, fmt: OutputFormat) -> None:
    """Sum the stems with their gains; a peak over 1.0 (0 dBFS) scales the whole mix down to
    exactly 1.0, so nothing is clipped and the balance is what was asked."""
    total = mixed(sources)
    encode(target, total, fmt)


def mixed(sources: list[tuple[Path, float]]) -> Float:
    """Float32 sum in stem order, trimmed to the shortest stem (lossy codecs may add a frame)."""
    stems = [(decode(path), gain) for path, gain in sources]
    length = min(audio.shape[1] for audio, _ in stems)
    total = np.zeros((2, length), dtype=np.float32)
    for audio, gain in stems:
        total += audio[:, :length] * np.float32(gain)
    peak = float(np.max(np.abs(total))) if length else 0.0
    if peak > 1.0:
        total /= np.float32(peak)
    return total


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
        # wav and wav-float share an extension: the name keeps them apart
        kind = "-float" if spec.fmt is OutputFormat.WAV_FLOAT else ""
        name = (f"{job.id}-{job.outputs[0].selectors[0]}-mix-{spec.name}{kind}"
                f".{spec.fmt.extension}")
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
                for s in stems:
                    await content.existing_file(s.content_id, s.path)
                async with content.local_files([(s.content_id, s.path) for s in stems]) as files:
                    await asyncio.to_thread(part.parent.mkdir, parents=True, exist_ok=True)
                    await asyncio.to_thread(
                        render, list(zip(files, [spec.gains[s.name] for s in stems],
                                         strict=True)), part, spec.fmt)
            add(await asyncio.to_thread(lambda: part.stat().st_size))
