"""Stems already separated from the same bytes, kept to complete a repeat job in a second.

An entry is a folder `cache/<key>/` holding the stem files and a manifest written last; it
appears whole (built beside, then renamed into place). Files are hard links where the file
system allows, so an entry costs no space while its job's results still exist.

An entry lives as long as the job whose separation made it: deleting or expiring that job
removes it (found by the manifests' `job`: no index that a crash could leave out of step),
and a hit on an entry whose job has no files any more is a miss that removes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from separation import model_files

MANIFEST = "manifest.json"
Entry = tuple[dict[str, Path], dict[str, Any]]  # stem files, and the song's facts


class CacheScope(enum.StrEnum):
    """`owner`: a key reuses its own results; `global`: anyone's; `off`: never."""

    OWNER = "owner"
    GLOBAL = "global"
    OFF = "off"


@dataclass(frozen=True, slots=True)
class Separation:
    """What decides a separation's result, apart from the input bytes."""

    method: int
    shifts: int
    fmt: str
    runtime: str  # runtime, precision and chunk overlap: each changes the stems slightly


def input_digest(path: Path) -> str:
    """SHA-256 of the input file: the same bytes give the same stems."""
    return model_files.sha256_of(path)


class ResultCache:
    """Entries under `folder`, keyed on scope, input digest, separation and model files."""

    def __init__(self, folder: Path, scope: CacheScope, models: Path,
                 live: Callable[[str], Awaitable[bool]] | None = None) -> None:
        self._folder = folder
        self._scope = scope
        self._live = live  # whether a job still has its files
        self._models = _model_identity(models) if scope is not CacheScope.OFF else ""

    def key(self, owner: str, digest: str, separation: Separation) -> str | None:
        """The entry's name, or None when the cache is off."""
        if self._scope is CacheScope.OFF:
            return None
        who = owner if self._scope is CacheScope.OWNER else ""
        text = json.dumps([who, digest, separation.method, separation.shifts, separation.fmt,
                           separation.runtime, self._models])
        return hashlib.sha256(text.encode()).hexdigest()

    async def has(self, key: str | None) -> bool:
        return key is not None and await asyncio.to_thread(
            (self._folder / key / MANIFEST).is_file)

    async def take(self, key: str | None, out_dir: Path) -> Entry | None:
        """Link the entry's stems into `out_dir` (which the caller then owns): the stems and
        the song's facts, or None."""
        if key is None:
            return None
        entry = self._folder / key
        made_by = await asyncio.to_thread(_made_by, entry)
        if made_by is None:
            return None
        if self._live is not None and not await self._live(made_by):
            await asyncio.to_thread(_remove, entry)  # its job was deleted or expired
            return None
        return await asyncio.to_thread(self._take, entry, out_dir)

    async def forget(self, job_id: str) -> None:
        """Remove every entry made by this job's separations."""
        await asyncio.to_thread(self._forget, job_id)

    def _forget(self, job_id: str) -> None:
        if self._folder.is_dir():
            for entry in self._folder.iterdir():
                if not entry.name.startswith(".") and _made_by(entry) == job_id:
                    _remove(entry)

    async def keep(self, key: str | None, stems: dict[str, Path], facts: dict[str, Any],
                   job_id: str) -> None:
        """Record a finished separation's stems and facts; a concurrent identical entry wins."""
        if key is not None:
            await asyncio.to_thread(self._keep, key, stems, facts, job_id)

    def _take(self, entry: Path, out_dir: Path) -> Entry | None:
        try:
            manifest = json.loads((entry / MANIFEST).read_text())
            facts: dict[str, Any] = manifest["facts"]  # an entry without: separate again
            out_dir.mkdir(parents=True, exist_ok=True)
            stems = {}
            for stem, name in manifest["stems"].items():
                _link(entry / name, out_dir / name)
                stems[stem] = out_dir / name
        except (OSError, ValueError, KeyError):
            return None  # absent, or removed meanwhile: separate instead
        return stems, facts

    def _keep(self, key: str, stems: dict[str, Path], facts: dict[str, Any],
              job_id: str) -> None:
        building = self._folder / f".{key}.{uuid.uuid4().hex}"
        building.mkdir(parents=True)
        try:
            for path in stems.values():
                _link(path, building / path.name)
            manifest = {"job": job_id, "stems": {stem: p.name for stem, p in stems.items()},
                        "facts": facts}
            (building / MANIFEST).write_text(json.dumps(manifest))
            with contextlib.suppress(OSError):  # an entry exists already: keep that one
                os.rename(building, self._folder / key)
        finally:
            shutil.rmtree(building, ignore_errors=True)

    def clean(self) -> None:
        """Remove half-built entries a killed process left behind."""
        if self._folder.is_dir():
            for path in self._folder.glob(".*"):
                shutil.rmtree(path, ignore_errors=True)


def _made_by(entry: Path) -> str | None:
    """The job named in the entry's manifest; None if the entry is absent or unreadable."""
    try:
        return str(json.loads((entry / MANIFEST).read_text())["job"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _remove(entry: Path) -> None:
    """Rename aside first: no hit ever links half an entry; `clean` ends what a kill left."""
    aside = entry.with_name(f".{entry.name}.{uuid.uuid4().hex}.gone")
    try:
        os.rename(entry, aside)
    except OSError:
        return  # removed by someone else meanwhile
    shutil.rmtree(aside, ignore_errors=True)


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or no hard links: a copy does as well
        shutil.copyfile(source, target)


def _model_identity(models: Path) -> str:
    """The model files' checksums: new weights never serve the old weights' stems."""
    piano = models / model_files.PIANO_MODEL_NAME
    parts = [model_files.HTDEMUCS.sha256]
    if piano.is_file():
        parts.append(model_files.sha256_of(piano))
    return ",".join(parts)
