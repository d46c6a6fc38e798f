"""The service with its content in an S3 bucket (a real SeaweedFS), over real HTTP."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_harness import Origin, basic_header, serving

from service.state import SERVICE
from support.seaweed import SeaweedFS


async def objects(seaweed: SeaweedFS, storage: dict[str, Any]) -> dict[str, int]:
    """Every object in the storage's bucket, key -> size, as boto3 lists it directly."""
    bucket = storage["storage_url"].removeprefix("s3://")

    def listed() -> dict[str, int]:
        pages = seaweed.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return {item["Key"]: item["Size"] for page in pages
                for item in page.get("Contents", [])}
    return await asyncio.to_thread(listed)


async def test_content_jobs_and_deletion_on_s3(tmp_path: Path, seaweed: SeaweedFS,
                                               s3_storage: dict[str, Any], origin: Origin,
                                               short_wav: Path) -> None:
    async with serving(tmp_path / "data", storage=s3_storage) as running:
        api, alice = running.api, running.api.key
        auth = {"headers": basic_header(alice)}
        repo = alice.default_content
        clip = await asyncio.to_thread(short_wav.read_bytes)
        status, body = await api.raw("PUT", f"/content/{repo}/in/clip.wav", data=clip, **auth)
        assert status == 201, body
        assert (await objects(seaweed, s3_storage)) == {f"{repo}/in/clip.wav": len(clip)}
        assert await api.raw("GET", f"/content/{repo}/in/clip.wav", **auth) == (200, clip)
        # the path rules hold on S3 too: "in" is a folder (a key prefix), the file no folder
        for path in ("in", "in/clip.wav/x"):
            status, body = await api.raw("PUT", f"/content/{repo}/{path}", data=b"x", **auth)
            assert (status, body["error"]["code"]) == (409, "PATH_CONFLICT"), path

        from_source = await api.create([{"source": {"contentId": repo, "path": "in/clip.wav"}}],
                                       outputs=[{"destination": "/out", "inputSelectors": [0],
                                                 "smartContentDescriptor": {
                                                     "musicSeperate": {"method": 1}}}])
        from_url = await api.create([{"url": origin.url + "/files/clip.wav"}])
        done = [await api.wait(job["id"], within=180) for job in (from_source, from_url)]
        assert [job["state"] for job in done] == [3, 3], done
        stored = await objects(seaweed, s3_storage)
        for job, folder in zip(done, ("out/", ""), strict=True):
            names = [r["fileName"] for r in job["outputs"][0]["smartContentResult"][
                "musicSeperate"]]
            assert len(names) == 2
            for name in names:
                assert stored[f"{repo}/{folder}{name}"] > 100_000
                status, data = await api.raw("GET", f"/content/{repo}/{folder}{name}", **auth)
                assert status == 200 and len(data) == stored[f"{repo}/{folder}{name}"]
        assert not (running.settings.content_dir).exists()  # nothing went to the local folder

        # the quota counts what is in the bucket, and refuses past it
        service = running.service.runner.app[SERVICE]
        assert await service.quota.used(alice.secret_id) == sum(stored.values())
        limit, service.quota.limit = service.quota.limit, sum(stored.values()) + 10
        status, body = await api.raw("PUT", f"/content/{repo}/more.bin", data=b"x" * 11, **auth)
        assert (status, body["error"]["code"]) == (413, "QUOTA_EXCEEDED"), body
        service.quota.limit = limit

        # a mix and the player's waveforms read their stems from the bucket
        mix = await api.ok("MixJob", {"id": done[1]["id"], "preset": "instrumental"})
        assert (await objects(seaweed, s3_storage))[f"{repo}/{mix['path']}"] > 100_000
        link = await api.ok("CreatePlayerLink", {"id": done[1]["id"]})
        page, _, query = link["url"].partition("?")
        async with api.client.get(f"{page}/waveforms.png?{query}") as answer:
            assert answer.status == 200
            assert (await answer.read()).startswith(b"\x89PNG")

        # DeleteJob removes its results and mixes from the bucket; the rest stays
        await api.ok("DeleteJob", {"id": done[1]["id"]})
        left = await objects(seaweed, s3_storage)
        assert not [key for key in left if done[1]["id"] in key], left
        assert [key for key in left if done[0]["id"] in key]
        status, body = await api.raw("GET", f"/content/{repo}/{mix['path']}", **auth)
        assert (status, body["error"]["code"]) == (410, "CONTENT_GONE")
        status, _ = await api.raw("DELETE", f"/content/{repo}/in/clip.wav", **auth)
        assert status == 204 and f"{repo}/in/clip.wav" not in (await objects(seaweed, s3_storage))


async def test_two_services_share_a_bucket_by_prefix(tmp_path: Path, seaweed: SeaweedFS,
                                                     s3_storage: dict[str, Any]) -> None:
    """Two PREFIXes of one bucket are two stores: the same repository id, apart."""
    url = s3_storage["storage_url"]
    one = {**s3_storage, "storage_url": url + "/one"}
    two = {**s3_storage, "storage_url": url + "/two"}
    async with serving(tmp_path / "one", storage=one) as first, \
            serving(tmp_path / "two", storage=two) as second:
        for running, body in ((first, b"first"), (second, b"second")):
            key = running.api.key
            status, _ = await running.api.raw("PUT", f"/content/{key.default_content}/a.txt",
                                              data=body, headers=basic_header(key))
            assert status == 201
        stored = await objects(seaweed, s3_storage)
        assert stored == {f"one/{first.api.key.default_content}/a.txt": 5,
                          f"two/{second.api.key.default_content}/a.txt": 6}


# --- outages --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def outage_store() -> Iterator[SeaweedFS]:
    """A SeaweedFS of these tests' own, to pause without disturbing the others'."""
    store = SeaweedFS()
    store.start()
    yield store
    store.stop()


def outage_settings(store: SeaweedFS, name: str, retry: float) -> dict[str, Any]:
    store.create_bucket(name)
    return {**store.settings(f"s3://{name}"), "s3_timeout": 1.0, "s3_retry_seconds": retry}


async def separating(api: Any, origin: Origin) -> dict[str, Any]:
    """A job from a URL (no S3 read) that is now separating: its next S3 call is a write."""
    job = await api.create([{"url": origin.url + "/files/clip.wav"}])
    return await api.until(job["id"], lambda j: (j["state"] == 2 and j["progress"] > 0)
                           or j["state"] in (3, 4, 5), within=120)


def storage_failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "stembot.storage"]


async def test_a_short_outage_during_the_upload_is_waited_out(
        tmp_path: Path, outage_store: SeaweedFS, origin: Origin,
        caplog: pytest.LogCaptureFixture) -> None:
    storage = outage_settings(outage_store, "short-outage", retry=60)
    caplog.set_level(logging.WARNING, "stembot.storage")
    # no TTL: no expiry sweep finishes the interrupted DeleteJob below before the test does
    async with serving(tmp_path / "data", storage=storage, result_ttl=0) as running:
        api, alice = running.api, running.api.key
        status, _ = await api.raw("PUT", f"/content/{alice.default_content}/a.txt", data=b"a",
                                  headers=basic_header(alice))
        assert status == 201
        job = await separating(api, origin)
        assert job["state"] == 2, job
        outage_store.pause()
        try:
            # the job's results cannot be written: it waits, still PROCESSING
            async with asyncio.timeout(60):
                while not storage_failures(caplog):  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
            assert (await api.job(job["id"]))["state"] == 2
            # an API call answers 503 in the error shape, not 500
            status, body = await api.raw("GET", f"/content/{alice.default_content}/a.txt",
                                         headers=basic_header(alice))
            assert (status, body["error"]["code"]) == (503, "STORAGE_UNAVAILABLE"), body
            assert "object store could not be reached" in body["error"]["message"]
            assert str(outage_store.port) not in body["error"]["message"]
        finally:
            outage_store.resume()
        done = await api.wait(job["id"], within=90)
        assert done["state"] == 3, done
        stored = await objects(outage_store, storage)
        names = [f"{alice.default_content}/{result['fileName']}"
                 for result in done["outputs"][0]["smartContentResult"]["musicSeperate"]]
        assert all(stored[name] > 100_000 for name in names)

        # DeleteJob in an outage answers 503 (the files are gone to clients already); asked
        # again later it removes every file
        outage_store.pause()
        try:
            status, body = await api.call("DeleteJob", {"id": job["id"]})
            assert (status, body["error"]["code"]) == (503, "STORAGE_UNAVAILABLE"), body
        finally:
            outage_store.resume()
        assert set(names) <= set(await objects(outage_store, storage))
        status, body = await api.raw("GET", f"/content/{names[0]}", headers=basic_header(alice))
        assert (status, body["error"]["code"]) == (410, "CONTENT_GONE")
        await api.ok("DeleteJob", {"id": job["id"]})
        assert not set(names) & set(await objects(outage_store, storage))


async def test_an_outage_past_the_retry_window_fails_the_job(
        tmp_path: Path, outage_store: SeaweedFS, origin: Origin) -> None:
    storage = outage_settings(outage_store, "long-outage", retry=2)
    async with serving(tmp_path / "data", storage=storage) as running:
        api = running.api
        job = await separating(api, origin)
        assert job["state"] == 2, job
        outage_store.pause()
        try:
            done = await api.wait(job["id"], within=90)
        finally:
            outage_store.resume()
        assert (done["state"], done["errorCode"]) == (4, "STORAGE_UNAVAILABLE"), done
        message = done["errorMessage"]
        assert "object store could not be reached for 2 s" in message
        assert str(outage_store.port) not in message and "127.0.0.1" not in message
        assert not (await objects(outage_store, storage))  # no result was written
