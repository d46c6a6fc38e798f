"""Per-key limits over real HTTP: open jobs, separations per job, ListJobs pages."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from service_harness import Origin, Running, serving

from service.state import SERVICE

METHOD_1 = {"musicSeperate": {"method": 1}}


def job_request(url: str, inputs: int = 1, outputs: int = 1, selectors: int = 1,
                **fields: Any) -> dict[str, Any]:
    return {"inputs": [{"url": url}] * inputs, "outputs": [
        {"inputSelectors": list(range(selectors)), "smartContentDescriptor": METHOD_1}
    ] * outputs, **fields}


async def test_open_jobs_per_key_are_limited(tmp_path: Path, origin: Origin) -> None:
    """Jobs not yet final count; the refusal creates nothing; other keys are not affected."""
    async with serving(tmp_path / "data", max_open_jobs=3) as running:
        api, slow = running.api, origin.url + "/slow?s=30"
        attempts = [api.call("CreateJob", job_request(slow, customId="open")) for _ in range(6)]
        answers = await asyncio.gather(*attempts)
        assert sorted(status for status, _ in answers) == [200] * 3 + [429] * 3
        refused = next(body for status, body in answers if status == 429)
        assert refused["error"]["code"] == "TOO_MANY_JOBS"
        assert "3 jobs that are not finished" in refused["error"]["message"]

        # refused before anything is created: no job, no repository claimed
        status, body = await api.call("CreateJob", job_request(
            slow, customId="open", outputs=1) | {"outputs": [
                {"contentId": "claimed-by-nobody", "inputSelectors": [0],
                 "smartContentDescriptor": METHOD_1}]})
        assert (status, body["error"]["code"]) == (429, "TOO_MANY_JOBS")
        assert (await api.ok("ListJobs", {"customId": "open"}))["total"] == 3
        store = running.service.runner.app[SERVICE].store
        assert await store.repo_owner("claimed-by-nobody") is None

        assert (await api.ok("CreateJob", job_request(slow), key=running.other))["job"]
        first = next(body for status, body in answers if status == 200)
        await api.ok("CancelJob", {"id": first["createJobResponse"]["job"]["id"]})
        assert (await api.ok("CreateJob", job_request(slow)))["job"]["state"] == 1


async def test_separations_per_job_are_limited(running: Running, origin: Origin) -> None:
    """The issue's 16 inputs x 16 outputs x 16 selectors is refused by the default of 16."""
    url = origin.url + "/files/missing.wav"
    status, body = await running.api.call("CreateJob", job_request(url, 16, 16, 16))
    assert (status, body["error"]["code"]) == (400, "INVALID_PARAMETER")
    assert "256 separations" in body["error"]["message"]
    assert "at most 16" in body["error"]["message"]
    status, body = await running.api.call("CreateJob", job_request(url, 2, 9, 2))
    assert status == 400 and "18 separations" in body["error"]["message"]
    assert (await running.api.ok("ListJobs", {"customId": ""}))["total"] == 0
    job = (await running.api.ok("CreateJob", job_request(url, 2, 8, 2)))["job"]
    assert len(job["outputs"]) == 8


async def test_list_jobs_pages(tmp_path: Path, origin: Origin) -> None:
    async with serving(tmp_path / "data", max_open_jobs=1000) as running:
        api, url = running.api, origin.url + "/files/missing.wav"
        ids = [(await api.ok("CreateJob", job_request(url, customId="many")))["job"]["id"]
               for _ in range(101)]
        first = await api.ok("ListJobs", {"customId": "many"})
        assert first["total"] == 101
        assert [job["id"] for job in first["jobs"]] == ids[:100]
        page = await api.ok("ListJobs", {"customId": "many", "offset": 99, "limit": 3})
        assert [job["id"] for job in page["jobs"]] == ids[99:]
        assert page["total"] == 101
        past = await api.ok("ListJobs", {"customId": "many", "offset": 500, "limit": 1000})
        assert (past["jobs"], past["total"]) == ([], 101)
        for fields, word in (({"limit": 0}, "limit"), ({"limit": 1001}, "limit"),
                             ({"offset": -1}, "offset"), ({"offset": "1"}, "offset"),
                             ({"limit": True}, "limit"), ({"offset": 2**63}, "offset")):
            status, body = await api.call("ListJobs", {"customId": "many", **fields})
            assert (status, body["error"]["code"]) == (400, "INVALID_PARAMETER"), fields
            assert f"listJobsRequest.{word}" in body["error"]["message"]
