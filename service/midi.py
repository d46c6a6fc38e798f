"""CreateMidi: a completed job's pitched stems as MIDI files, written beside its stems, once.

Each file is a derived file of the job as a mix is: recorded in the store's mix records
(format `mid`, the digest naming the stem and the decoding's version), so DeleteJob and the
TTL remove it with the job's mixes and a second request finds it instead of transcribing
again. The transcription runs in a separation worker process (WorkerPool.transcribe),
queued with the separations; on an API-only node (no workers) in a thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from separation.errors import SeparationError
from separation.midi_decoding import DECODING_VERSION, UNPITCHED
from service.content import ContentStore
from service.errors import ApiError, InvalidParameter
from service.mixes import Stem
from service.protocol import Job
from service.quota import StorageQuota
from service.store import MixRecord, Store, now_ms
from service.worker import MIDI_PROGRESS, MidiTask, Outcome, ProgressMessage, WorkerPool
from service.worker import transcribe as transcribe_here

log = logging.getLogger("stembot.midi")
DEFAULT_STEMS = ("bass", "piano", "vocals")
FORMAT = "mid"
WHERE = "createMidiRequest.stems"


class MidiFailed(ApiError):
    status = 500
    code = "MIDI_FAILED"


@dataclass(frozen=True, slots=True)
class MidiFile:
    stem: str
    content_id: str
    path: str


def requested_stems(body: dict[str, Any], stems: list[Stem], where: str = WHERE
                    ) -> list[Stem]:
    """The stems named in `stems` (each once, the job's order), or by default its bass, piano
    and vocals; drums and stems the job does not have are refused, naming the field."""
    by_name = {stem.name: stem for stem in stems}
    if "stems" not in body:
        chosen = [stem for stem in stems if stem.name in DEFAULT_STEMS]
        if not chosen:
            raise InvalidParameter(f"{where}: this job has none of {', '.join(DEFAULT_STEMS)};"
                                   " name the stems to transcribe")
        return chosen
    names = body["stems"]
    if not isinstance(names, list) or not names or \
            not all(isinstance(name, str) for name in names):
        raise InvalidParameter(f"{where} must be a non-empty list of stem names")
    for name in names:
        if name in UNPITCHED:
            raise InvalidParameter(f"{where}: {name} are not pitched, so they have no notes to"
                                   " write as MIDI; ask for bass, piano, vocals or other")
        if name not in by_name:
            raise InvalidParameter(f"{where}: unknown stem {name!r}; this job's stems are"
                                   f" {', '.join(by_name)}")
    return [stem for stem in stems if stem.name in set(names)]


def song_bpm(job: Job) -> float | None:
    """The tempo measured on the job's first input (its facts), if the song had a clear one."""
    facts = job.outputs[0].facts
    tempo = facts[0].get("tempo") if facts else None
    bpm = tempo.get("bpm") if isinstance(tempo, dict) else None
    return float(bpm) if isinstance(bpm, int | float) and bpm > 0 else None


def midi_digest(stem: str) -> str:
    """Same job and stem, same decoding: the same file (a new decoding makes it again)."""
    text = json.dumps({"midi": stem, "decoding": DECODING_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def midi_file_name(job: Job, stem: str) -> str:
    """`JOB-INPUT-STEM.mid`, beside `JOB-INPUT-STEM.<audio>`."""
    return f"{job.id}-{job.outputs[0].selectors[0]}-{stem}.{FORMAT}"


class MidiMaker:
    """Transcribes stems for a service; one at a time per job and stem, so a file asked for
    twice at once is made once too."""

    def __init__(self, store: Store, content: ContentStore, quota: StorageQuota,
                 pool: WorkerPool | None) -> None:
        self._store = store
        self._content = content
        self._quota = quota
        self._pool = pool
        self._locks: dict[str, asyncio.Lock] = {}
        self._local = asyncio.Lock()  # one transcription at a time without workers
        self.progress: dict[str, int] = {}  # `midi:JOB:STEM` -> percent, while it runs
        if pool is not None:
            pool.on_midi_progress = self._on_progress

    def _on_progress(self, message: ProgressMessage) -> None:
        key, _, done, total = message
        if key in self.progress and total:
            self.progress[key] = round(100 * done / total)

    async def make(self, job: Job, stems: list[Stem]) -> list[MidiFile]:
        return [await self._one(job, stem) for stem in stems]

    async def _one(self, job: Job, stem: Stem) -> MidiFile:
        digest = midi_digest(stem.name)
        async with self._locks.setdefault(f"{job.id}:{digest}", asyncio.Lock()):
            content = self._content
            folder = PurePosixPath(stem.path).parent
            rel = str(folder / midi_file_name(job, stem.name))
            for record in await self._store.mixes_of(job.id, digest):
                if await content.exists(record.content_id, record.path):
                    return MidiFile(stem.name, record.content_id, record.path)
            await content.writable(job.owner, stem.content_id)
            await content.existing_file(stem.content_id, stem.path)
            part = content.scratch_file(f".{FORMAT}")
            try:
                async with self._quota.reserve(job.owner, "this MIDI file") as add:
                    async with content.local_files([(stem.content_id, stem.path)]) as [source]:
                        await self._transcribe(MidiTask(
                            f"{MIDI_PROGRESS}{job.id}:{stem.name}", source, part, stem.name,
                            song_bpm(job)))
                    add(await asyncio.to_thread(lambda: part.stat().st_size))
                await content.put_file(stem.content_id, rel, part, name=WHERE)
            finally:
                await asyncio.to_thread(part.unlink, True)
            await self._store.add_mix(MixRecord(job.id, digest, f"midi-{stem.name}", {},
                                                FORMAT, stem.content_id, rel, now_ms()))
            return MidiFile(stem.name, stem.content_id, rel)

    async def _transcribe(self, task: MidiTask) -> None:
        self.progress[task.key] = 0
        try:
            if self._pool is not None:
                outcome = await self._pool.transcribe(task)
            else:
                async with self._local:
                    outcome = await asyncio.to_thread(_here, task)
        finally:
            self.progress.pop(task.key, None)
        if outcome.error_code:
            log.warning("MIDI of %s failed: %s %s", task.key, outcome.error_code,
                        outcome.error_message)
            raise MidiFailed(f"the {task.stem} stem could not be transcribed:"
                             f" {outcome.error_message}")


def _here(task: MidiTask) -> Outcome:
    """Without workers: in this process (the service's thread)."""
    try:
        notes = transcribe_here(task)
    except SeparationError as error:
        return Outcome({}, "MIDI_FAILED", str(error))
    return Outcome({task.stem: Path(task.target)}, facts={"notes": notes})
