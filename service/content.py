"""Content repositories: folders of the file store, owned by a key, with confined paths."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath

from service.errors import ContentForbidden, ContentNotFound, InvalidParameter, PayloadTooLarge
from service.store import Store

_CONTENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


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
    return str(PurePosixPath(*parts)) if parts else ""


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
        """Claims a free repository id for `owner`; another key's id is refused."""
        check_content_id(content_id)
        if not await self._store.claim_repo(content_id, owner):
            raise ContentForbidden(f"repository {content_id!r} belongs to another key")

    async def existing_file(self, content_id: str, rel: str) -> Path:
        path = self.file(content_id, rel)
        if not rel or not await asyncio.to_thread(path.is_file):
            raise ContentNotFound(f"no file {rel!r} in repository {content_id!r}")
        return path

    async def save(self, content_id: str, rel: str, chunks: AsyncIterator[bytes]) -> int:
        """Stream an upload to a hidden part file and rename it into place; returns its size."""
        if not rel:
            raise InvalidParameter("path: a file name is required")
        target = self.file(content_id, rel)
        await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
        part = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
        size = 0
        file = await asyncio.to_thread(part.open, "wb")
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > self._max_bytes:
                    raise PayloadTooLarge(f"file is over the {self._max_bytes} byte limit")
                await asyncio.to_thread(file.write, chunk)
        except BaseException:
            await asyncio.to_thread(file.close)
            await asyncio.to_thread(part.unlink, True)
            raise
        await asyncio.to_thread(file.close)
        await asyncio.to_thread(os.replace, part, target)
        return size

    async def place(self, content_id: str, destination: str, name: str, source: Path) -> None:
        """Move a finished stem into the repository (same file system: a rename)."""
        target = self.file(content_id, str(PurePosixPath(destination, name)) if destination
                           else name)
        await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(shutil.move, source, target)
