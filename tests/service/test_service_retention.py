"""Retention: DeleteJob, DELETE /content, STEMBOT_RESULT_TTL expiry, 410 Gone, the cache."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from service_harness import Api, Origin, Running, basic_header, serving
from test_service_cache import separated

from service import retention
from service.store import SCHEMA_VERSION, NewKey
from service.store_sql import SqlStore


def result_paths(job: dict[str, Any]) -> list[str]:
    output = job["outputs"][0]
    return [f"/content/{output['contentId']}/{r['fileName']}"
            for r in output["smartContentResult"]["musicSeperate"]]


async def link_for(api: Api, path: str) -> str:
    _, content_id, rel = path.split("/", 3)[1:]
    made = await api.ok("CreateLink", {"contentId": content_id, "path": rel})
    url = urlsplit(made["url"])
    return f"{url.path}?{url.query}"


async def gone_everywhere(api: Api, paths: list[str], links: list[str], key: NewKey) -> None:
    """Each file and each signed link answers 410 CONTENT_GONE, never a file."""
    for path in paths:
        status, body = await api.raw("GET", path, headers=basic_header(key))
        assert status == 410 and body["error"]["code"] == "CONTENT_GONE", body
    for link in links:
        status, body = await api.raw("GET", link)
        assert status == 410 and body["error"]["code"] == "CONTENT_GONE", body


async def no_stems_on_disk(running: Running, job_id: str) -> None:
    data = running.settings.data_dir
    left = await asyncio.to_thread(
        lambda: [p for p in data.rglob(f"*{job_id}*") if "work" not in p.parts])
    assert left == []


async def test_delete_a_finished_job(tmp_path: Path, origin: Origin) -> None:
    async with serving(tmp_path / "data") as running:
        api, alice, bob = running.api, running.api.key, running.other
        clip = origin.url + "/files/clip.wav"
        job = await separated(api, clip, alice)
        mix = await api.ok("MixJob", {"id": job["id"], "preset": "acapella"})
        paths = [*result_paths(job), f"/content/{mix['contentId']}/{mix['path']}"]
        links = [await link_for(api, path) for path in paths]
        status, body = await api.call("DeleteJob", {"id": job["id"]}, key=bob)
        assert status == 404 and body["error"]["code"] == "JOB_NOT_FOUND"
        assert (await api.raw("GET", paths[0], headers=basic_header(alice)))[0] == 200
        deleted = (await api.ok("DeleteJob", {"id": job["id"]}))["job"]
        assert deleted["state"] == 3 and int(deleted["deletedAt"]) > 0
        assert "resultsExpireAt" in job and "resultsExpireAt" not in deleted
        await gone_everywhere(api, paths, links, alice)
        assert not (running.settings.content_dir / mix["contentId"] / mix["path"]).exists()
        # nothing more can be made from its stems: no new mix, no player
        for action in ("MixJob", "CreatePlayerLink"):
            request = {"id": job["id"]} | ({"preset": "acapella"} if action == "MixJob" else {})
            status, body = await api.call(action, request)
            assert (status, body["error"]["code"]) == (410, "CONTENT_GONE"), body
        await no_stems_on_disk(running, job["id"])
        assert (await api.ok("DeleteJob", {"id": job["id"]}))["job"] == deleted  # idempotent
        assert await api.job(job["id"]) == deleted  # the record stays
        # the cache entry made by the deleted job's separation went with it
        again = await separated(api, clip, alice)
        assert not any(r.get("fromCache") for r in
                       again["outputs"][0]["smartContentResult"]["musicSeperate"])


async def test_delete_an_open_job(running: Running, origin: Origin) -> None:
    api = running.api
    job = await api.create([{"url": origin.url + "/slow?s=30"}])
    deleted = (await api.ok("DeleteJob", {"id": job["id"]}))["job"]
    assert deleted["state"] == 5 and int(deleted["deletedAt"]) > 0
    assert await api.job(job["id"]) == deleted
    status, body = await api.call("DeleteJob", {})
    assert status == 400 and body["error"]["code"] == "INVALID_PARAMETER"


async def test_delete_content(running: Running) -> None:
    api, alice, bob = running.api, running.api.key, running.other
    repo = await api.repository("mine")
    path = f"/content/{repo}/uploads/song.wav"
    assert (await api.raw("PUT", path, data=b"abc", headers=basic_header(alice)))[0] == 201
    status, body = await api.raw("DELETE", path, headers=basic_header(bob))
    assert status == 404 and body["error"]["code"] == "CONTENT_NOT_FOUND"
    assert (await api.raw("DELETE", path, headers=basic_header(alice)))[0] == 204
    assert (await api.raw("GET", path, headers=basic_header(alice)))[0] == 404
    status, body = await api.raw("DELETE", path, headers=basic_header(alice))
    assert status == 404 and body["error"]["code"] == "CONTENT_NOT_FOUND"
    status, body = await api.raw("DELETE", f"/content/{repo}/uploads",
                                 headers=basic_header(alice))
    assert status == 404  # a folder is not a file
    assert (await api.raw("DELETE", path))[0] == 401


async def test_results_expire_after_the_ttl(tmp_path: Path, origin: Origin) -> None:
    async with serving(tmp_path / "data", result_ttl=2) as running:
        api, alice = running.api, running.api.key
        clip = origin.url + "/files/clip.wav"
        job = await separated(api, clip, alice)
        assert int(job["resultsExpireAt"]) == int(job["timing"]["completedAt"]) + 2000
        paths = result_paths(job)
        links = [await link_for(api, path) for path in paths]
        expired = await api.until(job["id"], lambda j: "resultsExpiredAt" in j, within=30)
        assert expired["state"] == 3 and "deletedAt" not in expired
        assert "resultsExpireAt" not in expired
        assert expired["timing"] == job["timing"]  # the record stays, with its timing
        await gone_everywhere(api, paths, links, alice)
        await no_stems_on_disk(running, job["id"])
        again = await separated(api, clip, alice)  # its cache entry expired with it
        assert not any(r.get("fromCache") for r in
                       again["outputs"][0]["smartContentResult"]["musicSeperate"])


V1_JOBS = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema', '1');
CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, owner TEXT NOT NULL,
    custom_id TEXT NOT NULL, callback TEXT NOT NULL, state INTEGER NOT NULL,
    inputs TEXT NOT NULL, outputs TEXT NOT NULL, created_at INTEGER NOT NULL,
    deadline INTEGER NOT NULL, started_at INTEGER NOT NULL DEFAULT 0,
    completed_at INTEGER NOT NULL DEFAULT 0, attempt INTEGER NOT NULL DEFAULT 0,
    restarts INTEGER NOT NULL DEFAULT 0, error_code TEXT NOT NULL DEFAULT '',
    error_message TEXT NOT NULL DEFAULT '', callback_state TEXT NOT NULL DEFAULT 'NONE',
    callback_attempts INTEGER NOT NULL DEFAULT 0, callback_error TEXT NOT NULL DEFAULT ''
);
INSERT INTO jobs (id, owner, custom_id, callback, state, inputs, outputs, created_at,
                  deadline, completed_at)
VALUES ('old', 'AKID1', '', '', 3, '[{"url": "http://h/a.wav"}]', '[]', 1, 2, 3);
"""


async def test_a_schema_1_database_gains_the_retention_columns(tmp_path: Path) -> None:
    path = tmp_path / "service.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(V1_JOBS)
    for _ in range(2):  # the migration runs once; a second start changes nothing
        store = await SqlStore.open(path)
        try:
            old = await store.job("old")
            assert old is not None and old.deleted_at == 0 and old.expired_at == 0
            assert [j.id for j in await store.expirable(10, 10)] == ["old"]
        finally:
            await store.close()
    with sqlite3.connect(path) as db:
        schema = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    assert schema == (str(SCHEMA_VERSION),)


async def test_the_disk_guard(tmp_path: Path, origin: Origin,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Below STEMBOT_MIN_FREE_BYTES: CreateJob and PUT answer 507, a run that would write
    its results ends in ERROR; the reading is faked, the files are real."""
    readings: list[int] = []
    monkeypatch.setattr(retention, "free_bytes", lambda folder: readings.pop(0)
                        if readings else 10)
    async with serving(tmp_path / "data", min_free_bytes=1000) as running:
        api, alice = running.api, running.api.key
        repo = await api.repository("mine")
        status, body = await api.raw("PUT", f"/content/{repo}/a.wav", data=b"abc",
                                     headers=basic_header(alice))
        assert status == 507 and body["error"]["code"] == "STORAGE_FULL", body
        assert "STEMBOT_MIN_FREE_BYTES" in body["error"]["message"]
        assert str(tmp_path) not in body["error"]["message"]
        clip = [{"url": origin.url + "/files/clip.wav"}]
        status, body = await api.call("CreateJob", {"inputs": clip, "outputs": [{
            "inputSelectors": [0], "smartContentDescriptor": {"musicSeperate": {"method": 1}}}]})
        assert status == 507 and body["error"]["code"] == "STORAGE_FULL", body
        assert not await asyncio.to_thread((running.settings.content_dir / repo).exists)
        readings[:] = [10**9]  # room at CreateJob, none once the stems are to be written
        job = await api.create(clip)
        ended = await api.wait(job["id"])
        assert ended["state"] == 4 and ended["errorCode"] == "STORAGE_FULL", ended
        readings[:] = [10**9]
        assert (await api.raw("PUT", f"/content/{repo}/a.wav", data=b"abc",
                              headers=basic_header(alice)))[0] == 201
