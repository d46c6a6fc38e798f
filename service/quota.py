"""A key's stored bytes against STEMBOT_MAX_STORED_BYTES.

The key's repositories are walked off the event loop at each write instead of keeping a
running total: nothing can drift after a crash or a file removed by hand, and a walk of
thousands of files takes milliseconds. Writes in flight are counted in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from service.errors import QuotaExceeded
from service.store import Store


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


def file_size(path: Path) -> int:
    """The size of the file a write replaces; 0 if there is none."""
    try:
        return path.stat().st_size if path.is_file() else 0
    except OSError:
        return 0


class StorageQuota:
    """Refuses a write that would put a key's repositories over `limit` bytes."""

    def __init__(self, root: Path, store: Store, limit: int) -> None:
        self._root = root
        self._store = store
        self.limit = limit
        self._pending: dict[str, int] = {}  # owner -> bytes being written now

    async def used(self, owner: str) -> int:
        folders = [self._root / repo for repo in await self._store.repos_of(owner)]
        return await asyncio.to_thread(_walk, folders)

    @contextlib.asynccontextmanager
    async def reserve(self, owner: str, what: str, replaced: int = 0
                      ) -> AsyncIterator[Callable[[int], None]]:
        """Yields `add(size)` for the bytes written, which raises QuotaExceeded past the limit.

        `replaced`: bytes of a file the write replaces, free again once it is done.
        """
        stored = await self.used(owner) - replaced
        reserved = 0

        def add(size: int) -> None:
            nonlocal reserved
            if stored + self._pending.get(owner, 0) + size > self.limit:
                raise QuotaExceeded(
                    f"{what} would put this key's repositories over their {self.limit} byte"
                    f" limit ({stored} bytes stored)")
            reserved += size
            self._pending[owner] = self._pending.get(owner, 0) + size

        try:
            yield add
        finally:
            left = self._pending.get(owner, 0) - reserved
            if left > 0:
                self._pending[owner] = left
            else:
                self._pending.pop(owner, None)
