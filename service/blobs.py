"""The bytes under the content repositories: one small Protocol, the local folder behind it.

A key is `CONTENT_ID/path/to/file`, made by ContentStore from checked parts only. A folder is
what has files under it (on S3 a key prefix). `open_blobs` picks the implementation from
STEMBOT_STORAGE_URL; S3Blobs lives in service/blobs_s3.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, TypeVar

from aiohttp import web

from service.errors import (
    ApiError,
    ContentNotFound,
    InvalidParameter,
    PathConflict,
    PayloadTooLarge,
    StorageFull,
    StorageUnavailable,
)

if TYPE_CHECKING:
    from service.settings import ServiceSettings

T = TypeVar("T")


class Kind(enum.Enum):
    """What stands at a key: a file, a folder (files below it) or nothing."""

    NOTHING = "nothing"
    FILE = "file"
    FOLDER = "folder"


class Blobs(Protocol):
    """Byte storage for ContentStore, which keeps every rule (owners, paths, conflicts)."""

    async def check(self) -> None:
        """At start: StartupError, in one line, if the store cannot be used as configured."""

    async def kind(self, key: str) -> Kind: ...

    async def size(self, key: str) -> int | None:
        """The file's bytes; None if no file is there."""

    async def put_stream(self, key: str, chunks: AsyncIterator[bytes], limit: int) -> int:
        """Store the chunks whole or not at all; PayloadTooLarge past `limit` bytes."""

    async def put_file(self, key: str, source: Path) -> None:
        """Store a local file, which this may move away (the caller is done with it)."""

    async def local_copy(self, key: str, target: Path) -> Path:
        """A local file with the blob's bytes, to read only: the store's own file where it
        keeps one, else downloaded to `target`. ContentNotFound if there is none."""

    async def delete(self, key: str) -> bool:
        """Remove the file; False if there was none."""

    async def names(self, folder: str, start: str) -> list[str]:
        """Names of the files right in `folder` that start with `start`."""

    async def total(self, repositories: list[str]) -> int:
        """Bytes stored under these repositories (finished files only)."""

    async def response(self, key: str, request: web.Request, headers: dict[str, str]
                       ) -> web.StreamResponse:
        """The file as an HTTP answer, Range requests honoured; `headers` name its type."""


def open_blobs(settings: ServiceSettings) -> Blobs:
    """The local content folder, or the bucket of an s3:// STEMBOT_STORAGE_URL."""
    if not settings.storage_url:
        return LocalBlobs(settings.content_dir)
    from service.blobs_s3 import S3Blobs  # boto3 loads only where S3 is used

    return S3Blobs.from_settings(settings)


async def patiently(window: float, call: Callable[[], Awaitable[T]]) -> T:
    """`call()`, tried again while the store is unavailable, for up to `window` seconds.

    For a job's reads and writes: a job can wait out a short outage, an API call cannot.
    """
    give_up = time.monotonic() + window
    pause = 0.5
    while True:
        try:
            return await call()
        except StorageUnavailable:
            if time.monotonic() + pause > give_up:
                raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, 5.0)


# --- the local folder ---------------------------------------------------------------------


def _fs_error(error: OSError, rel: str) -> ApiError:
    """What a file-system refusal means to the caller, without the server's paths."""
    if error.errno == errno.ENAMETOOLONG:
        return InvalidParameter(f"path {rel!r} is too long for the file store")
    if error.errno in (errno.EISDIR, errno.ENOTDIR, errno.EEXIST):
        return PathConflict(f"path {rel!r}: a file and a folder are in each other's way")
    if error.errno == errno.ENOSPC:
        return StorageFull(f"path {rel!r}: the server's disk is full")
    raise error


def _walk(folders: list[Path]) -> int:
    """Bytes of the regular files under `folders`; uploads in flight (hidden .part) excluded."""
    total = 0
    for folder in folders:
        for parent, _dirs, files in os.walk(folder):
            for name in files:
                if name.startswith(".") and name.endswith(".part"):
                    continue
                with contextlib.suppress(OSError):  # removed meanwhile
                    total += os.lstat(os.path.join(parent, name)).st_size
    return total


def _kind(path: Path) -> Kind:
    if path.is_dir():
        return Kind.FOLDER
    return Kind.FILE if path.exists() else Kind.NOTHING


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size if path.is_file() else None
    except OSError:
        return None


def _unlink_file(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        path.unlink()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return False
    return True


def _move(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir():  # shutil.move would put the file inside it
        raise IsADirectoryError(errno.EISDIR, "is a folder")
    shutil.move(source, target)


def _names(folder: Path, start: str) -> list[str]:
    with contextlib.suppress(OSError):
        return sorted(p.name for p in folder.iterdir() if p.name.startswith(start)
                      and not p.name.startswith(".") and p.is_file())
    return []


async def write_chunks(file: BinaryIO, chunks: AsyncIterator[bytes], limit: int) -> int:
    """Write the chunks and close the file; PayloadTooLarge before the byte past `limit`."""
    size = 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"file is over the {limit} byte limit")
            await asyncio.to_thread(file.write, chunk)
    finally:
        await asyncio.to_thread(file.close)
    return size


class LocalBlobs:
    """Files under `root`: `root/CONTENT_ID/path`; a write goes to a hidden part file first."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def check(self) -> None:
        """Nothing to check: folders are made as files arrive."""

    def path(self, key: str) -> Path:
        """The key's file; a symlink that leads out of its repository is refused."""
        base = self.root / key.split("/", 1)[0]
        target = self.root / key
        if not target.resolve().is_relative_to(base.resolve()):
            raise InvalidParameter("path leaves the repository")
        return target

    async def kind(self, key: str) -> Kind:
        return await asyncio.to_thread(_kind, self.root / key)

    async def size(self, key: str) -> int | None:
        return await asyncio.to_thread(_size, self.path(key))

    async def put_stream(self, key: str, chunks: AsyncIterator[bytes], limit: int) -> int:
        rel = key.split("/", 1)[-1]
        target = self.path(key)
        part = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
        try:
            await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
            file = await asyncio.to_thread(part.open, "wb")
        except OSError as error:  # a racing writer changed the tree since the check
            raise _fs_error(error, rel) from None
        try:
            size = await write_chunks(file, chunks, limit)
            await asyncio.to_thread(os.replace, part, target)
        except BaseException as error:
            await asyncio.to_thread(part.unlink, True)
            if isinstance(error, OSError):
                raise _fs_error(error, rel) from None
            raise
        return size

    async def put_file(self, key: str, source: Path) -> None:
        """A move: on the data folder's file system, a rename."""
        try:
            await asyncio.to_thread(_move, source, self.path(key))
        except OSError as error:
            raise _fs_error(error, key.split("/", 1)[-1]) from None

    async def local_copy(self, key: str, target: Path) -> Path:
        path = self.path(key)
        if not await asyncio.to_thread(path.is_file):
            raise ContentNotFound(f"no file {key.split('/', 1)[-1]!r}")
        return path

    async def delete(self, key: str) -> bool:
        return await asyncio.to_thread(_unlink_file, self.path(key))

    async def names(self, folder: str, start: str) -> list[str]:
        return await asyncio.to_thread(_names, self.root / folder, start)

    async def total(self, repositories: list[str]) -> int:
        return await asyncio.to_thread(_walk, [self.root / repo for repo in repositories])

    async def response(self, key: str, request: web.Request, headers: dict[str, str]
                       ) -> web.StreamResponse:
        # never a type guessed from the name: the caller names it (service/served.py)
        return web.FileResponse(self.path(key),
                                headers={"Content-Type": "application/octet-stream", **headers})
