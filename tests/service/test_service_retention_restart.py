"""Kill -9 the real `stembot serve` in the middle of an expiry sweep and of a DeleteJob:
after a start, no job points at half its files."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import uuid
from pathlib import Path

import aiohttp
import test_service_restart as restart
from service_harness import Api, basic_header

from separation.presets import StemPreset
from service.store import NewKey, now_ms
from service.store_sql import SqlStore
from wire.enums import State, Tone
from wire.jobs import OutputSpec, Result

env = restart.env
STEMS = (Tone.VOCALS, Tone.DRUMS, Tone.BASS, Tone.OTHER)


async def seeded_key(data: Path) -> NewKey:
    store = await SqlStore.open(data / "service.sqlite3")
    try:
        return await store.create_key("retention")
    finally:
        await store.close()


def seed_jobs(data: Path, key: NewKey, jobs: int, stems: int) -> dict[str, list[Path]]:
    """`jobs` COMPLETED jobs, each with `stems` result files in the key's repository."""
    repo = data / "content" / key.default_content
    repo.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[Path]] = {}
    rows = []
    for _ in range(jobs):
        job_id = str(uuid.uuid4())
        results = tuple(Result(STEMS[n % 4], f"{job_id}-0-{n}.wav") for n in range(stems))
        output = OutputSpec(key.default_content, "/", (0,), StemPreset.FOUR_STEMS, results)
        files[job_id] = [repo / r.file_name for r in results]
        for path in files[job_id]:
            path.write_bytes(b"RIFF stem")
        ended = now_ms() - 60_000
        rows.append((job_id, key.secret_id, "seed", "", int(State.COMPLETED),
                     json.dumps([{"url": "http://h/a.wav"}]), json.dumps([output.wire()]),
                     ended, ended + 3_600_000, ended, ended))
    with sqlite3.connect(data / "service.sqlite3") as db:
        db.executemany("INSERT INTO jobs (id, owner, custom_id, callback, state, inputs,"
                       " outputs, created_at, deadline, started_at, completed_at)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return files


def count(folder: Path) -> int:
    return sum(1 for _ in os.scandir(folder))


async def kill_once_files_go(server: subprocess.Popen[bytes], folder: Path, start: int
                             ) -> None:
    """SIGKILL the server as soon as the first of the files is removed."""
    async with asyncio.timeout(60):
        while await asyncio.to_thread(count, folder) == start:  # noqa: ASYNC110
            await asyncio.sleep(0)
    os.killpg(server.pid, signal.SIGKILL)
    await asyncio.to_thread(server.wait)


def purging(data: Path) -> list[str]:
    with sqlite3.connect(data / "service.sqlite3") as db:
        return [str(r[0]) for r in db.execute("SELECT id FROM jobs WHERE purging=1")]


def columns(data: Path, job_id: str) -> tuple[int, int]:
    with sqlite3.connect(data / "service.sqlite3") as db:
        row = db.execute("SELECT deleted_at, expired_at FROM jobs WHERE id=?",
                         (job_id,)).fetchone()
    return int(row[0]), int(row[1])


async def test_a_kill_in_the_middle_of_an_expiry_sweep(
        env: dict[str, str], tmp_path: Path, servers: list[subprocess.Popen[bytes]]) -> None:
    data = Path(env["STEMBOT_DATA_DIR"])
    key = await seeded_key(data)
    files = await asyncio.to_thread(seed_jobs, data, key, 2000, 4)
    repo = data / "content" / key.default_content
    log = tmp_path / "server.log"
    await restart.serve(env | {"STEMBOT_RESULT_TTL": "1"}, log, servers)
    await kill_once_files_go(servers[0], repo, 8000)
    interrupted = purging(data)
    assert interrupted, "killed while a batch's files were being removed"
    # Started again without a TTL: only the start's own finishing can remove what is left.
    await restart.serve(env | {"STEMBOT_RESULT_TTL": "0"}, log, servers)
    assert purging(data) == []
    expired = 0
    for job_id, paths in files.items():
        left = sum(path.exists() for path in paths)
        if columns(data, job_id)[1]:
            expired += 1
            assert left == 0, job_id  # expired: every file gone
        else:
            assert left == 4, job_id  # not expired: every file there
    assert set(interrupted) <= {j for j in files if columns(data, j)[1]}
    assert 0 < expired < len(files)  # the kill came in the middle


async def test_a_kill_in_the_middle_of_a_delete_job(
        env: dict[str, str], tmp_path: Path, servers: list[subprocess.Popen[bytes]]) -> None:
    data = Path(env["STEMBOT_DATA_DIR"])
    key = await seeded_key(data)
    files = await asyncio.to_thread(seed_jobs, data, key, 1, 6000)
    (job_id, _paths), = files.items()
    repo = data / "content" / key.default_content
    log = tmp_path / "server.log"
    url = await restart.serve(env | {"STEMBOT_RESULT_TTL": "0"}, log, servers)
    async with aiohttp.ClientSession() as client:
        api = Api(client, url, key)
        deleting = asyncio.create_task(api.call("DeleteJob", {"id": job_id}))
        await kill_once_files_go(servers[0], repo, 6000)
        deleting.cancel()
        assert purging(data) == [job_id]
        assert 0 < await asyncio.to_thread(count, repo) < 6000
        url = await restart.serve(env | {"STEMBOT_RESULT_TTL": "0"}, log, servers)
        api = Api(client, url, key)
        assert purging(data) == [] and await asyncio.to_thread(count, repo) == 0
        job = await api.job(job_id)
        assert int(job["deletedAt"]) > 0 and job["state"] == 3
        name = job["outputs"][0]["smartContentResult"]["musicSeperate"][0]["fileName"]
        status, body = await api.raw("GET", f"/content/{key.default_content}/{name}",
                                     headers=basic_header(key))
        assert status == 410 and body["error"]["code"] == "CONTENT_GONE"


