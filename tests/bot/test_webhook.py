"""The callback listener: only signed callbacks for jobs this bot submitted get through."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.jobapi import Job
from bot.webhook import CallbackListener
from storage import Database, JobRecord, JobState, JobStore, NewJob
from wire.signature import SIGNATURE_HEADER, callback_signature

KEY = "the-bots-secret-key"


def job_body(job_id: str, custom_id: str = "", state: int = 3) -> bytes:
    return json.dumps({
        "id": job_id, "state": state, "customId": custom_id, "callback": "", "inputs": [],
        "outputs": [], "timing": {"createdAt": "1", "startedAt": "2", "completedAt": "3"},
    }).encode()


class Harness:
    def __init__(self, jobs: JobStore, listener: CallbackListener) -> None:
        self.jobs = jobs
        self.listener = listener
        self.received: list[tuple[int, Job]] = []

    def url(self, token: str) -> str:
        return f"http://127.0.0.1:{self.listener.port}/callbacks/{token}"

    async def post(self, token: str, body: bytes, signature: str | None = None) -> int:
        headers = {SIGNATURE_HEADER: signature if signature is not None
                   else callback_signature(KEY, body)}
        async with aiohttp.ClientSession() as session, session.post(
            self.url(token), data=body, headers=headers
        ) as response:
            return response.status


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with await Database.open(tmp_path / "bot.db") as db:
        jobs = JobStore(db)
        received: list[tuple[int, Job]] = []

        async def on_callback(record: JobRecord, job: Job) -> None:
            received.append((record.id, job))

        listener = CallbackListener(jobs, KEY, on_callback)
        await listener.start("127.0.0.1", 0)
        h = Harness(jobs, listener)
        h.received = received
        yield h
        await listener.stop()


async def submitted(jobs: JobStore, service_id: str | None = "svc-1") -> JobRecord:
    record = await jobs.create(NewJob(1, 2, 3, "https://x/a.mp3", "a", 2, "mp3"))
    return await jobs.update(record.id, service_job_id=service_id, state=JobState.QUEUED)


async def test_signed_callback_is_accepted(harness: Harness) -> None:
    record = await submitted(harness.jobs)
    assert await harness.post(record.callback_token, job_body("svc-1")) == 204
    # The answer comes first; the work runs right after it.
    for _ in range(50):
        if harness.received:
            break
        await asyncio.sleep(0.02)
    assert [(i, j.id) for i, j in harness.received] == [(record.id, "svc-1")]


async def test_bad_signature_is_rejected(harness: Harness) -> None:
    record = await submitted(harness.jobs)
    body = job_body("svc-1")
    forged = callback_signature("someone-elses-key", body)
    assert await harness.post(record.callback_token, body, forged) == 401
    assert await harness.post(record.callback_token, body, "") == 401
    # A valid signature over a different body does not carry over.
    other = callback_signature(KEY, job_body("svc-1", state=4))
    assert await harness.post(record.callback_token, body, other) == 401
    assert harness.received == []


async def test_unknown_token_and_foreign_job_are_rejected(harness: Harness) -> None:
    record = await submitted(harness.jobs)
    assert await harness.post("not-a-token", job_body("svc-1")) == 404
    # Signed with our key, but not the job this token was issued for.
    assert await harness.post(record.callback_token, job_body("svc-2")) == 409
    assert await harness.post(record.callback_token, b"not json") == 400
    assert harness.received == []


async def test_callback_before_the_service_id_was_saved(harness: Harness) -> None:
    """The service can answer before CreateJob's reply is stored; the customId matches."""
    record = await submitted(harness.jobs, service_id=None)
    body = job_body("svc-9", custom_id=record.custom_id)
    assert await harness.post(record.callback_token, body) == 204
    assert await harness.post(record.callback_token, job_body("svc-9", "other")) == 409


async def test_a_non_ascii_signature_is_refused_not_a_fault(harness: Harness) -> None:
    record = await submitted(harness.jobs)
    assert await harness.post(record.callback_token, job_body("svc-1"), "sha256=é") == 401
    assert harness.received == []
