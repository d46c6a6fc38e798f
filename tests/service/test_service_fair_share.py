"""Fair share inside a key (`tenant`) and the queue positions GetJob shows, over real HTTP.

The service here has no workers (an API-only node), so nothing claims a job but the test:
it claims through the store, as a worker node sharing the database would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from service_harness import Running, serving

from separation.presets import StemPreset
from service.state import SERVICE
from service.store import Store
from wire.enums import State, Tone
from wire.jobs import OutputSpec, Result


@pytest_asyncio.fixture
async def api_only(tmp_path: Path) -> AsyncIterator[Running]:
    async with serving(tmp_path / "data", workers=0) as started:
        yield started


def store_of(running: Running) -> Store:
    store: Store = running.service.runner.app[SERVICE].store
    return store


async def create(running: Running, tenant: str | None = None, key: Any = None
                 ) -> dict[str, Any]:
    fields = {"tenant": tenant} if tenant is not None else {}
    return await running.api.create([{"url": "http://127.0.0.1:9/a.wav"}], key=key, **fields)


async def test_queue_positions_are_the_claim_order(api_only: Running) -> None:
    running = api_only
    big = [await create(running, "guild-big") for _ in range(5)]
    small = [await create(running, f"guild-{n}") for n in range(3)]
    other = await create(running, key=running.other)
    assert big[0]["tenant"] == "guild-big" and "tenant" not in other
    ids = [j["id"] for j in [*big, *small, other]]
    shown = {job_id: await running.api.job(job_id, key=running.other if job_id == other["id"]
                                           else None) for job_id in ids}
    queue = {job_id: job["queue"] for job_id, job in shown.items()}
    by_position = sorted(ids, key=lambda job_id: queue[job_id]["position"])
    assert [queue[j]["position"] for j in by_position] == list(range(1, len(ids) + 1))
    assert all(queue[j]["ahead"] == queue[j]["position"] - 1 for j in ids)
    # nothing measured yet on this service: no estimate, rather than a made-up one
    assert not any("etaSeconds" in q for q in queue.values())
    # the small servers' first jobs are not behind the big server's queue
    assert max(queue[j["id"]]["position"] for j in small) < queue[big[1]["id"]]["position"]
    store = store_of(running)
    claimed = []
    while (job := await store.claim_next("worker", 30)) is not None:
        claimed.append(job.id)
    assert claimed == by_position
    job = await running.api.job(big[0]["id"])
    assert job["state"] == 2 and "queue" not in job


async def test_the_estimate_rests_on_measured_separations(api_only: Running) -> None:
    running = api_only
    first = await create(running, "g1")
    store = store_of(running)
    job = await store.claim_next("worker", 30)
    assert job is not None and job.id == first["id"]
    stems = (OutputSpec(job.outputs[0].content_id, "/", (0,), StemPreset.TWO_STEMS,
                        (Result(Tone.VOCALS, "v.wav"),)),)
    assert await store.finish(job.id, State.COMPLETED, outputs=stems, attempt=job.attempt)
    waiting = [await create(running, "g1") for _ in range(3)]
    queue = [(await running.api.job(j["id"]))["queue"] for j in waiting]
    assert [q["position"] for q in queue] == [1, 2, 3]
    etas = [q["etaSeconds"] for q in queue]
    assert etas == sorted(etas) and etas[0] >= 1
    assert "the last 1 separations on this service" in queue[0]["etaBasis"]


async def test_list_jobs_by_tenant(api_only: Running) -> None:
    running = api_only
    mine = [await create(running, "g1"), await create(running, "g1")]
    await create(running, "g2")
    listed = await running.api.ok("ListJobs", {"tenant": "g1"})
    assert [j["id"] for j in listed["jobs"]] == [j["id"] for j in mine]
    assert listed["total"] == 2 and all("queue" in j for j in listed["jobs"])
    status, body = await running.api.call("ListJobs", {"tenant": "g 1"})
    assert status == 400 and "listJobsRequest.tenant" in body["error"]["message"]
