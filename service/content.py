"""Content repositories: folders of the file store, owned by a key, with confined paths."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import secrets
import shutil
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from service.errors import (
    ApiError,
    ContentGone,
    ContentNotFound,
    InvalidParameter,
    PathConflict,
    PayloadTooLarge,
    StorageFull,
)
from service.store import Store

_CONTENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# bytes; a file's part name adds 15 to its name, and file systems stop at 255
MAX_NAME = 240
MAX_PATH = 1024
STAGING = ".staging"  # under the content root: results of (job, attempt) before they count


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


def conflict(base: Path, rel: str, *, folder: bool) -> str:
    """Why `rel` cannot be written under `base`, or "": a file where a folder must be, or a
    folder where the file goes (`folder`: `rel` itself is to be a folder)."""
    parts = PurePosixPath(rel).parts
    for depth in range(1, len(parts) + 1):
        here = base.joinpath(*parts[:depth])
        shown = "/".join(parts[:depth])
        wants_file = depth == len(parts) and not folder
        if wants_file and here.is_dir():
            return f"{shown!r} is a folder"
        if not wants_file and here.exists() and not here.is_dir():
            return f"{shown!r} is a file, not a folder"
    return ""


def _fs_error(error: OSError, rel: str) -> ApiError:
    """What a file-system refusal means to the caller, without the server's paths."""
    if error.errno == errno.ENAMETOOLONG:
        return InvalidParameter(f"path {rel!r} is too long for the file store")
    if error.errno in (errno.EISDIR, errno.ENOTDIR, errno.EEXIST):
        return PathConflict(f"path {rel!r}: a file and a folder are in each other's way")
    if error.errno == errno.ENOSPC:
        return StorageFull(f"path {rel!r}: the server's disk is full")
    raise error


class ContentStore:
    """Maps (contentId, path) to files under `root`, never outside a repository."""

    def __init__(self, root: Path, store: Store, max_bytes: int) -> None:
        self.root = root
        self._store = store
        self._max_bytes = max_bytes

    def folder(self, content_id: str) -> Path:
        return self.root / check_content_id(content_id)

    def file(self, content_id: str, rel: str) -> Path:
        """The file's path; symlinks that lead out of the repository are refused too."""
        base = self.folder(content_id)
        target = base / rel if rel else base
        if not target.resolve().is_relative_to(base.resolve()):
            raise InvalidParameter("path leaves the repository")
        return target

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

    async def existing_file(self, content_id: str, rel: str) -> Path:
        """The file; a deleted or expired job's file is Gone, even while its removal runs."""
        path = self.file(content_id, rel)
        gone = await self._store.gone(content_id, rel) if rel else None
        if gone is not None:
            why = "was deleted with its job" if gone.deleted_at else "expired with its job"
            raise ContentGone(f"file {rel!r} {why} {gone.id!r}")
        if not rel or not await asyncio.to_thread(path.is_file):
            raise ContentNotFound(f"no file {rel!r} in repository {content_id!r}")
        return path

    async def delete(self, content_id: str, rel: str) -> None:
        """Remove one of the repository's files; ContentNotFound if there is none."""
        path = self.file(content_id, rel)
        try:
            await asyncio.to_thread(_unlink_file, path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ContentNotFound(f"no file {rel!r} in repository {content_id!r}") from None

    async def check_writable(self, content_id: str, rel: str, *, folder: bool, name: str
                             ) -> None:
        """PathConflict, naming the field, if `rel` cannot be written (see `conflict`)."""
        why = await asyncio.to_thread(conflict, self.folder(content_id), rel, folder=folder)
        if why:
            raise PathConflict(f"{name}: {why}")

    async def save(self, content_id: str, rel: str, chunks: AsyncIterator[bytes]) -> int:
        """Stream an upload to a hidden part file and rename it into place; returns its size."""
        if not rel:
            raise InvalidParameter("path: a file name is required")
        target = self.file(content_id, rel)
        await self.check_writable(content_id, rel, folder=False, name="path")
        part = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
        try:
            await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
            file = await asyncio.to_thread(part.open, "wb")
        except OSError as error:  # a racing writer changed the tree since the check
            raise _fs_error(error, rel) from None
        try:
            size = await self._write(file, chunks)
            await asyncio.to_thread(os.replace, part, target)
            await self._store.reuse_path(content_id, rel)
        except BaseException as error:
            await asyncio.to_thread(part.unlink, True)
            if isinstance(error, OSError):
                raise _fs_error(error, rel) from None
            raise
        return size

    async def _write(self, file: BinaryIO, chunks: AsyncIterator[bytes]) -> int:
        size = 0
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > self._max_bytes:
                    raise PayloadTooLarge(f"file is over the {self._max_bytes} byte limit")
                await asyncio.to_thread(file.write, chunk)
        finally:
            await asyncio.to_thread(file.close)
        return size

    # --- results: staged per (job, attempt), then published; see service/jobs.py

    def staging(self, job_id: str, attempt: int | None = None) -> Path:
        """Where an attempt's stems wait; '.staging' is never a contentId (none starts with
        a dot), so nothing staged can be read through the API."""
        folder = self.root / STAGING / job_id
        return folder / str(attempt) if attempt is not None else folder

    async def stage(self, job_id: str, attempt: int, output: int, name: str, source: Path
                    ) -> None:
        """Move a finished stem to the attempt's staging place (same file system: a rename)."""
        target = self.staging(job_id, attempt) / str(output) / name
        await asyncio.to_thread(_move, source, target)

    async def publish(self, job_id: str, attempt: int, output: int, content_id: str,
                      destination: str, name: str) -> None:
        """Move a staged stem to its destination; done already (no staged file) is fine, so
        any node can finish a publish another left half-done."""
        staged = self.staging(job_id, attempt) / str(output) / name
        if not await asyncio.to_thread(staged.is_file):
            return
        await self.place(content_id, destination, name, staged)

    async def unstage(self, job_id: str, attempt: int | None = None) -> None:
        """Remove an attempt's staging place (every attempt's, without one)."""
        folder = self.staging(job_id, attempt)
        await asyncio.to_thread(shutil.rmtree, folder, True)
        if attempt is not None:
            with contextlib.suppress(OSError):  # the job's folder, once it is empty
                await asyncio.to_thread(folder.parent.rmdir)

    async def staged_jobs(self) -> list[str]:
        """The jobs with a staging place (for the start-up clean-up)."""
        root = self.root / STAGING

        def names() -> list[str]:
            return [p.name for p in root.iterdir()] if root.is_dir() else []
        return await asyncio.to_thread(names)

    async def place(self, content_id: str, destination: str, name: str, source: Path) -> None:
        """Move a finished stem into the repository (same file system: a rename)."""
        rel = str(PurePosixPath(destination, name)) if destination else name
        await self.check_writable(content_id, rel, folder=False, name="destination")
        try:
            await asyncio.to_thread(_move, source, self.file(content_id, rel))
        except OSError as error:
            raise _fs_error(error, rel) from None


def _unlink_file(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(path.name)
    path.unlink()


def _move(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir():  # shutil.move would put the file inside it
        raise IsADirectoryError(errno.EISDIR, "is a folder")
    shutil.move(source, target)
