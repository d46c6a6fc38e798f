"""Content repositories: owned by a key, with confined paths; their bytes are Blobs."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath

from aiohttp import web

from service.blobs import Blobs, Kind
from service.errors import (
    ContentGone,
    ContentNotFound,
    InvalidParameter,
    PathConflict,
)
from service.store import Store

_CONTENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# bytes; a file's part name adds 15 to its name, and file systems stop at 255
MAX_NAME = 240
MAX_PATH = 1024
STAGING = ".staging"  # a folder of the store: results of (job, attempt) before they count


def check_content_id(content_id: str, name: str = "contentId") -> str:
    if not _CONTENT_ID.fullmatch(content_id):
        raise InvalidParameter(f"{name} must be 1-64 letters, digits, '.', '_' or '-'")
    return content_id


def clean_path(path: str, name: str, *, root_slash: bool) -> str:
    """A repository-relative POSIX path; `..`, `.`, empty segments and backslashes refused.

    With `root_slash` one leading '/' means the repository root, as in the protocol's
    default destination '/'; without it (URLs) any leading '/' is an absolute path.
    """
    if root_slash and path.startswith("/"):
        path = path[1:]
    if "\\" in path or "\x00" in path or path.startswith("/"):
        raise InvalidParameter(f"{name}: absolute paths and backslashes are not allowed")
    parts = [p for p in path.split("/")]
    if parts and parts[-1] == "":
        parts.pop()  # a trailing slash names the folder itself
    if any(p in ("", ".", "..") for p in parts):
        raise InvalidParameter(f"{name}: '..', '.' and empty path segments are not allowed")
    if any(len(p.encode()) > MAX_NAME for p in parts):
        raise InvalidParameter(f"{name}: a file or folder name is longer than {MAX_NAME} bytes")
    if len(path.encode()) > MAX_PATH:
        raise InvalidParameter(f"{name} is longer than {MAX_PATH} bytes")
    return str(PurePosixPath(*parts)) if parts else ""


class ContentStore:
    """Maps (contentId, path) to blobs, never outside a repository; the rules live here,
    the bytes in `blobs` (the local folder or S3)."""

    def __init__(self, blobs: Blobs, store: Store, max_bytes: int, scratch: Path) -> None:
        self.blobs = blobs
        self._store = store
        self._max_bytes = max_bytes
        self._scratch = scratch

    @staticmethod
    def key(content_id: str, rel: str) -> str:
        """The blob key of a checked repository-relative path ("" is the repository)."""
        check_content_id(content_id)
        return f"{content_id}/{rel}" if rel else content_id

    async def readable(self, owner: str, content_id: str) -> None:
        """Another key's repository looks exactly like a missing one."""
        check_content_id(content_id)
        if await self._store.repo_owner(content_id) != owner:
            raise ContentNotFound(f"no repository {content_id!r}")

    async def writable(self, owner: str, content_id: str) -> None:
        """A key writes only to repositories the service created for it, so no id can be
        claimed by a first write; unknown and foreign ids answer as missing ones."""
        await self.readable(owner, content_id)

    async def create(self, owner: str, name: str) -> str:
        """A new repository for `owner`: `name` (or 'repo') and a random suffix."""
        for _ in range(3):
            content_id = f"{name or 'repo'}-{secrets.token_hex(8)}"
            if await self._store.create_repo(content_id, owner):
                return content_id
        raise RuntimeError("no free repository id after 3 random draws")

    async def existing_file(self, content_id: str, rel: str) -> str:
        """The file's key; a deleted or expired job's file is Gone, even while its removal
        runs."""
        key = self.key(content_id, rel)
        size = await self.blobs.size(key) if rel else None
        gone = await self._store.gone(content_id, rel) if rel else None
        if gone is not None:
            why = "was deleted with its job" if gone.deleted_at else "expired with its job"
            raise ContentGone(f"file {rel!r} {why} {gone.id!r}")
        if size is None:
            raise ContentNotFound(f"no file {rel!r} in repository {content_id!r}")
        return key

    async def size(self, content_id: str, rel: str) -> int:
        """The bytes of the file at `rel`; 0 if there is none."""
        return await self.blobs.size(self.key(content_id, rel)) or 0

    async def exists(self, content_id: str, rel: str) -> bool:
        return await self.blobs.size(self.key(content_id, rel)) is not None

    async def delete(self, content_id: str, rel: str) -> None:
        """Remove one of the repository's files; ContentNotFound if there is none."""
        if not rel or not await self.blobs.delete(self.key(content_id, rel)):
            raise ContentNotFound(f"no file {rel!r} in repository {content_id!r}")

    async def conflict(self, content_id: str, rel: str, *, folder: bool) -> str:
        """Why `rel` cannot be written, or "": a file where a folder must be, or a folder
        where the file goes (`folder`: `rel` itself is to be a folder)."""
        parts = PurePosixPath(rel).parts if rel else ()
        for depth in range(1, len(parts) + 1):
            shown = "/".join(parts[:depth])
            kind = await self.blobs.kind(self.key(content_id, shown))
            wants_file = depth == len(parts) and not folder
            if wants_file and kind is Kind.FOLDER:
                return f"{shown!r} is a folder"
            if not wants_file and kind is Kind.FILE:
                return f"{shown!r} is a file, not a folder"
        return ""

    async def check_writable(self, content_id: str, rel: str, *, folder: bool, name: str
                             ) -> None:
        """PathConflict, naming the field, if `rel` cannot be written (see `conflict`)."""
        why = await self.conflict(content_id, rel, folder=folder)
        if why:
            raise PathConflict(f"{name}: {why}")

    async def save(self, content_id: str, rel: str, chunks: AsyncIterator[bytes]) -> int:
        """Store an upload whole (or not at all); returns its size."""
        if not rel:
            raise InvalidParameter("path: a file name is required")
        key = self.key(content_id, rel)
        await self.check_writable(content_id, rel, folder=False, name="path")
        size = await self.blobs.put_stream(key, chunks, self._max_bytes)
        await self._store.reuse_path(content_id, rel)
        return size

    async def put_file(self, content_id: str, rel: str, source: Path, *, name: str) -> None:
        """Store a finished local file (which may be moved away) at `rel`."""
        await self.check_writable(content_id, rel, folder=False, name=name)
        await self.blobs.put_file(self.key(content_id, rel), source)

    # --- results: staged per (job, attempt), then published; see service/pipeline.py

    @staticmethod
    def staged_key(job_id: str, attempt: int, output: int, name: str) -> str:
        """Where an attempt's stem waits: `.staging/JOB.ATTEMPT.OUTPUT.NAME`, one flat folder
        that Blobs can list. '.staging' is never a contentId (none starts with a dot), so
        nothing staged is ever served; a job id holds no '.', so the prefixes are exact."""
        return f"{STAGING}/{job_id}.{attempt}.{output}.{name}"

    async def stage(self, job_id: str, attempt: int, output: int, name: str, source: Path
                    ) -> None:
        """Store a finished stem (which may be moved away) in the attempt's staging place."""
        await self.blobs.put_file(self.staged_key(job_id, attempt, output, name), source)

    async def publish(self, job_id: str, attempt: int, output: int, content_id: str,
                      destination: str, name: str) -> None:
        """Move a staged stem to its destination; done already (nothing staged) is fine, so
        any node can finish a publish another left half-done."""
        staged = self.staged_key(job_id, attempt, output, name)
        if await self.blobs.size(staged) is None:
            return
        target = self.scratch_file(PurePosixPath(name).suffix)
        local = await self.blobs.local_copy(staged, target)  # locally: the staged file itself
        try:
            await self.place(content_id, destination, name, local)
        finally:
            if local == target:  # a download of ours, not the store's own file
                await asyncio.to_thread(target.unlink, True)
        await self.blobs.delete(staged)

    async def staged(self, job_id: str | None = None, attempt: int | None = None) -> list[str]:
        """Names in the staging place: of one attempt, of one job's attempts, or all."""
        start = "" if job_id is None else f"{job_id}." if attempt is None else \
            f"{job_id}.{attempt}."
        # '' is the folder itself: some S3 stores keep a marker object for a folder
        return [name for name in await self.blobs.names(STAGING, start) if name]

    async def unstage(self, job_id: str, attempt: int | None = None) -> None:
        """Remove what an attempt staged (every attempt's, without one)."""
        for name in await self.staged(job_id, attempt):
            await self.blobs.delete(f"{STAGING}/{name}")

    async def staged_jobs(self) -> list[str]:
        """The jobs something is staged for (for the start-up clean-up)."""
        return sorted({name.split(".", 1)[0] for name in await self.staged()})

    async def place(self, content_id: str, destination: str, name: str, source: Path) -> None:
        """Store a finished stem in the repository (locally: a rename)."""
        rel = str(PurePosixPath(destination, name)) if destination else name
        await self.put_file(content_id, rel, source, name="destination")

    async def local_copy(self, content_id: str, rel: str, target: Path) -> Path:
        """A local file with the file's bytes, to read only (see Blobs.local_copy)."""
        return await self.blobs.local_copy(self.key(content_id, rel), target)

    @contextlib.asynccontextmanager
    async def local_files(self, files: list[tuple[str, str]]) -> AsyncIterator[list[Path]]:
        """Local files with these (contentId, path) files' bytes while the block runs."""
        folder = await asyncio.to_thread(_scratch_folder, self._scratch)
        try:
            yield [await self.local_copy(content_id, rel,
                                         folder / f"{n}{PurePosixPath(rel).suffix}")
                   for n, (content_id, rel) in enumerate(files)]
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, True)

    def scratch_file(self, suffix: str) -> Path:
        """A fresh name in the scratch folder (made by `local_files` or `prepare`)."""
        return self._scratch / f"{secrets.token_hex(8)}{suffix}"

    async def prepare(self) -> None:
        """At start: the store is usable, and the scratch folder empty (a kill leaves files)."""
        await self.blobs.check()
        await asyncio.to_thread(shutil.rmtree, self._scratch, True)
        await asyncio.to_thread(self._scratch.mkdir, parents=True, exist_ok=True)

    async def response(self, content_id: str, rel: str, request: web.Request,
                       headers: dict[str, str]) -> web.StreamResponse:
        return await self.blobs.response(self.key(content_id, rel), request, headers)

    async def job_names(self, content_id: str, folder: str, start: str) -> list[str]:
        """Files right in `folder` of the repository whose names start with `start`."""
        return await self.blobs.names(self.key(content_id, folder), start)

    async def remove(self, content_id: str, rel: str) -> None:
        """Remove the file if it is there."""
        await self.blobs.delete(self.key(content_id, rel))


def _scratch_folder(scratch: Path) -> Path:
    scratch.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=scratch))
