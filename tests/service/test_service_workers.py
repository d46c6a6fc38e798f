"""Worker processes share the machine's cores without fighting over them."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from separation import model_files
from separation.runtime import RuntimeConfig
from service.worker import Task, WorkerPool, core_shares


def test_core_shares_are_disjoint_and_cover_the_cores() -> None:
    assert core_shares([0, 1], 1) == [[0, 1]]
    assert core_shares([0, 1], 2) == [[0], [1]]
    assert core_shares([0, 1, 2, 3, 4], 2) == [[0, 1, 2], [3, 4]]
    # more workers than cores: each still gets one core, shared round the cores
    assert core_shares([4, 5], 3) == [[4], [5], [4]]


def _children_affinity() -> list[set[int]]:
    """The CPU affinity of this process's live children, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():
            found.append(os.sched_getaffinity(int(entry.name)))
    return found


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to share")
async def test_each_worker_runs_on_its_own_share(tmp_path: Path) -> None:
    cores = sorted(os.sched_getaffinity(0))
    pool = WorkerPool(model_files.model_dir(), 2, RuntimeConfig(), lambda message: None)
    pool.start()
    try:
        missing = tmp_path / "missing.wav"
        tasks = [
            Task(job_id=f"j{n}", attempt=1, source=missing, out_dir=tmp_path / f"o{n}",
                 method=2, fmt="wav", max_seconds=60, max_bytes=1 << 20,
                 abort_file=tmp_path / "abort")
            for n in range(2)
        ]
        # two tasks at once make the pool start both workers
        outcomes = await asyncio.gather(*(pool.run(task) for task in tasks))
        assert all(outcome.error_code for outcome in outcomes)
        shares = [a for a in _children_affinity() if a != set(cores)]
        assert sorted(map(sorted, shares)) == [[c] for c in cores[:2]], shares
    finally:
        await pool.close()


def test_by_default_each_core_gets_a_worker_as_memory_allows(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from service import settings

    monkeypatch.setattr(settings, "available_cores", lambda: 8)
    pages = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 6 * settings.WORKER_MEMORY // 4096}
    monkeypatch.setattr(os, "sysconf", lambda name: pages[name])
    assert settings.default_workers() == 6  # memory for six, though eight cores
    pages["SC_PHYS_PAGES"] = 64 * settings.WORKER_MEMORY // 4096
    assert settings.default_workers() == 8
    monkeypatch.delenv("STEMBOT_WORKERS", raising=False)
    assert settings.ServiceSettings.from_env().workers == 8
    monkeypatch.setenv("STEMBOT_WORKERS", "1")
    assert settings.ServiceSettings.from_env().workers == 1
