"""A key's stored bytes against STEMBOT_MAX_STORED_BYTES.

The key's repositories are walked (locally) or listed (S3) at each write instead of keeping
a running total: nothing can drift after a crash or a file removed by hand, and a walk of
thousands of files takes milliseconds. Writes in flight are counted in memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from service.blobs import Blobs
from service.errors import QuotaExceeded
from service.store import Store


class StorageQuota:
    """Refuses a write that would put a key's repositories over `limit` bytes."""

    def __init__(self, blobs: Blobs, store: Store, limit: int) -> None:
        self._blobs = blobs
        self._store = store
        self.limit = limit
        self._pending: dict[str, int] = {}  # owner -> bytes being written now

    async def used(self, owner: str) -> int:
        return await self._blobs.total(await self._store.repos_of(owner))

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
