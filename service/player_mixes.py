"""Mixes made through a player link: a bounded cache on this node's disk, never the owner's.

A player link only reads, and anyone who holds one may ask for any gains: each distinct mix
lands here, not in the owner's repository or quota, and the least recently used go once
the folder holds more than STEMBOT_PLAYER_MIX_CACHE bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

PART = ".part"


class PlayerMixes:
    """One render at a time (a player link cannot occupy more than one core), the newest mix
    always kept until the next one is in, whatever its size."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self._lock = asyncio.Lock()

    async def get(self, name: str, make: Callable[[Path], Awaitable[None]]) -> Path:
        """The cached file `name`, made by `make(part)` first if it is not there."""
        path = self.folder / name
        async with self._lock:
            if await asyncio.to_thread(_touch, path):
                return path
            await asyncio.to_thread(self.folder.mkdir, parents=True, exist_ok=True)
            part = self.folder / f".{secrets.token_hex(8)}{PART}"
            try:
                await make(part)
                await asyncio.to_thread(os.replace, part, path)
            finally:
                await asyncio.to_thread(part.unlink, True)
            await asyncio.to_thread(evict, self.folder, self.max_bytes, path)
        return path

    async def forget(self, job_id: str) -> None:
        """Remove the job's mixes (its files were deleted or expired)."""
        await asyncio.to_thread(forget, self.folder, job_id)


def _touch(path: Path) -> bool:
    """Mark the file as just used; False if it is not there."""
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    return True


def evict(folder: Path, max_bytes: int, keep: Path) -> None:
    """Remove the least recently used mixes until the folder holds at most `max_bytes`."""
    files = [(f.stat().st_mtime_ns, f.stat().st_size, f) for f in folder.iterdir()
             if not f.name.endswith(PART)]
    total = sum(size for _, size, _ in files)
    for _, size, file in sorted(files):
        if total <= max_bytes:
            return
        if file != keep:
            with contextlib.suppress(FileNotFoundError):
                file.unlink()
            total -= size


def forget(folder: Path, job_id: str) -> None:
    if folder.is_dir():
        for file in folder.glob(f"{job_id}-*"):
            file.unlink(missing_ok=True)
