"""Separation outside the event loop: a process pool, the model loaded once per process."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing
import multiprocessing.queues
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from separation import Limits, OutputFormat, SeparationError, Separator, StemPreset
from separation.errors import (
    AudioDecodeError,
    AudioTooLargeError,
    AudioTooLongError,
    EmptyAudioError,
    ModelNotInstalledError,
)
from separation.facts import FactsCollector
from separation.midi import Transcriber
from separation.runtime import RuntimeConfig, available_cores

# (job id, attempt, chunks done, chunks total) from a worker to the server
ProgressMessage = tuple[str, int, int, int]
ProgressQueue: TypeAlias = "multiprocessing.queues.Queue[ProgressMessage | None]"
MIDI_PROGRESS = "midi:"  # the key of a MidiTask's progress messages starts so
CoreQueue: TypeAlias = "multiprocessing.queues.Queue[list[int]]"

_ERROR_CODES: dict[type[SeparationError], str] = {
    AudioDecodeError: "INVALID_AUDIO",
    EmptyAudioError: "EMPTY_AUDIO",
    AudioTooLongError: "AUDIO_TOO_LONG",
    AudioTooLargeError: "AUDIO_TOO_LARGE",
    ModelNotInstalledError: "MODEL_NOT_INSTALLED",
}


@dataclass(frozen=True, slots=True)
class Task:
    """One input separated for one output; plain data so it pickles to the worker."""

    job_id: str
    attempt: int
    source: Path
    out_dir: Path
    method: int
    fmt: str
    max_seconds: float
    max_bytes: int
    abort_file: Path
    shifts: int = 1


@dataclass(frozen=True, slots=True)
class Outcome:
    """Stem name to file and the song's facts, or an error code and message.

    Exceptions stay in the worker.
    """

    stems: dict[str, Path]
    error_code: str = ""
    error_message: str = ""
    facts: dict[str, Any] | None = None  # SongFacts.wire()


@dataclass(frozen=True, slots=True)
class MidiTask:
    """One stem file to a MIDI file (separation.midi); `key` names its progress messages."""

    key: str
    source: Path
    target: Path
    stem: str
    bpm: float | None


class Aborted(Exception):
    """The server wrote the job's abort file: canceled, timed out or shutting down."""


_separator: Separator | None = None
_progress: ProgressQueue | None = None
_config: RuntimeConfig | None = None
_transcriber: Transcriber | None = None


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Have the kernel end this worker when the server dies, even by SIGKILL.

    The pool's queues keep a writer open in every worker, so an orphaned worker would
    otherwise wait forever, holding a loaded model.
    """
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the check below remains
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def core_shares(cores: list[int], workers: int) -> list[list[int]]:
    """Split the cores into `workers` disjoint shares as even as they go; share fewer if short."""
    if workers >= len(cores):
        return [[cores[n % len(cores)]] for n in range(workers)]
    size, extra = divmod(len(cores), workers)
    shares, start = [], 0
    for n in range(workers):
        end = start + size + (1 if n < extra else 0)
        shares.append(cores[start:end])
        start = end
    return shares


def _init(model_dir: Path, config: RuntimeConfig, shares: CoreQueue, progress: ProgressQueue,
          parent: int) -> None:
    """Runs once in each worker process: take a share of the cores, load the model."""
    global _separator, _progress, _config
    _die_with_parent(parent)
    share = shares.get()
    with contextlib.suppress(AttributeError, OSError):  # not Linux: threads still follow share
        os.sched_setaffinity(0, share)
    _config = config.with_threads(config.threads or len(share))
    _separator = Separator(model_dir, _config)
    _progress = progress


def run_task(task: Task) -> Outcome:
    """The worker's job: separate, reporting progress, stopping at the next chunk if aborted."""
    assert _separator is not None, "worker not initialised"

    def progress(done: int, total: int) -> None:
        if task.abort_file.exists():
            raise Aborted(task.job_id)
        if _progress is not None:
            _progress.put((task.job_id, task.attempt, done, total))

    facts = FactsCollector(StemPreset(task.method).stems)
    try:
        stems = _separator.separate_file(
            task.source, task.out_dir, StemPreset(task.method), OutputFormat(task.fmt),
            limits=Limits(max_seconds=task.max_seconds, max_bytes=task.max_bytes),
            progress=progress, shifts=task.shifts, facts=facts,
        )
    except Aborted:
        return Outcome({}, "ABORTED", "the job was stopped")
    except SeparationError as error:
        # The engine names the file; here it is a server path the caller must not see.
        message = str(error).replace(str(task.source), "the file")
        message = message.replace(task.source.name, "the file")
        return Outcome({}, _ERROR_CODES.get(type(error), "SEPARATION_FAILED"), message)
    return Outcome(stems, facts=facts.facts().wire())


def transcribe(task: MidiTask, config: RuntimeConfig | None = None,
               progress: Callable[[int, int], None] | None = None) -> int:
    """The stem's notes written to `task.target`; how many. The note model is loaded on the
    first MIDI task a process runs and kept (it is small: 0.2 MB of weights)."""
    global _transcriber
    if _transcriber is None:
        _transcriber = Transcriber(config or _config or RuntimeConfig())
    return _transcriber.transcribe_file(task.source, task.target, task.stem, task.bpm, progress)


def run_midi_task(task: MidiTask) -> Outcome:
    """The worker's MIDI job, its progress on the separations' queue under `task.key`."""
    def progress(done: int, total: int) -> None:
        if _progress is not None:
            _progress.put((task.key, 0, done, total))

    try:
        notes = transcribe(task, progress=progress)
    except SeparationError as error:
        return Outcome({}, _ERROR_CODES.get(type(error), "MIDI_FAILED"),
                       str(error).replace(str(task.source), "the stem"))
    return Outcome({task.stem: task.target}, facts={"notes": notes})


def _cores() -> set[int]:
    try:
        return os.sched_getaffinity(0)
    except AttributeError:  # pragma: no cover - not Linux
        return set(range(available_cores()))


class WorkerPool:
    """The process pool and the thread that relays worker progress into the event loop.

    Each worker process runs on its own share of the cores (affinity and thread count), so
    that several workers on one machine do not fight over them.
    """

    def __init__(self, model_dir: Path, workers: int, config: RuntimeConfig,
                 on_progress: Callable[[ProgressMessage], None]) -> None:
        self._context = multiprocessing.get_context("spawn")  # no forked event-loop state
        self._queue: ProgressQueue = self._context.Queue()
        self._model_dir = model_dir
        self._config = config
        self._workers = workers
        self._on_progress = on_progress
        self._pool = self._new_pool()
        self._loop: asyncio.AbstractEventLoop | None = None
        # MidiTask progress (keys starting MIDI_PROGRESS); separations' go to on_progress
        self.on_midi_progress: Callable[[ProgressMessage], None] | None = None
        self._relay: threading.Thread | None = None

    def _new_pool(self) -> ProcessPoolExecutor:
        shares: CoreQueue = self._context.Queue()
        for share in core_shares(sorted(_cores()), self._workers):
            shares.put(share)
        return ProcessPoolExecutor(
            self._workers, mp_context=self._context, initializer=_init,
            initargs=(self._model_dir, self._config, shares, self._queue, os.getpid()))

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._relay = threading.Thread(target=self._relay_progress, name="progress", daemon=True)
        self._relay.start()

    def _relay_progress(self) -> None:
        while (message := self._queue.get()) is not None:
            assert self._loop is not None
            midi = message[0].startswith(MIDI_PROGRESS) and self.on_midi_progress
            self._loop.call_soon_threadsafe(midi or self._on_progress, message)

    async def run(self, task: Task) -> Outcome:
        """Separate in a worker; a crashed worker fails this task and gets a fresh pool."""
        try:
            return await asyncio.wrap_future(self._pool.submit(run_task, task))
        except BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return Outcome({}, "WORKER_CRASHED", "the separation worker stopped unexpectedly")

    async def transcribe(self, task: MidiTask) -> Outcome:
        """A stem to MIDI in a worker, queued with the separations; as `run` for a crash."""
        try:
            return await asyncio.wrap_future(self._pool.submit(run_midi_task, task))
        except BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return Outcome({}, "WORKER_CRASHED", "the worker stopped unexpectedly")

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._queue.put(None)
        if self._relay is not None:
            await asyncio.to_thread(self._relay.join, 5)
