"""Several nodes on one real PostgreSQL: API-only nodes, worker nodes, failures, a restart."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from service_harness import Origin, Running, basic_header, make_settings, serving
from test_service_jobs import signed
from test_service_restart import pool_workers, start

from separation import OutputFormat, encode, synth
from separation.presets import StemPreset
from service.app import close_service, open_service
from service.protocol import Job
from service.state import SERVICE, Service
from service.store import now_ms
from support.postgres import PostgresCluster
from wire.enums import State, Tone
from wire.jobs import InputSpec, OutputSpec, Result

LEASE = 2.0  # seconds: a dead worker's job runs elsewhere this soon


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A 30 s rendered clip: four model chunks, long enough to act on mid-separation."""
    mix = np.sum(list(synth.demo_clip(30.0).values()), axis=0)
    return encode(tmp_path_factory.mktemp("long") / "long.wav", mix,
                  OutputFormat.WAV).read_bytes()


@contextlib.asynccontextmanager
async def worker_node(data_dir: Path, database: str, **changes: Any) -> AsyncIterator[Service]:
    """A separation node in this process, as `stembot worker` runs one (no HTTP API)."""
    settings = make_settings(data_dir, database_url=database, workers=1,
                             lease_seconds=LEASE, **changes)
    service = await open_service(settings)
    try:
        yield service
    finally:
        await close_service(service)


def store_job(running: Running) -> Callable[[str], Any]:
    return running.service.runner.app[SERVICE].store.job


async def row_until(running: Running, job_id: str, ready: Callable[[Job], bool],
                    within: float = 60) -> Job:
    """Poll the shared store (there is no event to wait on across nodes)."""
    async with asyncio.timeout(within):
        while True:
            job = await store_job(running)(job_id)
            if job is not None and ready(job):
                return job
            await asyncio.sleep(0.05)


def node_env(data_dir: Path, database: str, name: str, lease: float) -> dict[str, str]:
    return os.environ | {
        "STEMBOT_DATA_DIR": str(data_dir), "STEMBOT_DATABASE_URL": database,
        "STEMBOT_NODE_NAME": name, "STEMBOT_LEASE_SECONDS": str(lease),
        "STEMBOT_WORKERS": "1", "STEMBOT_ALLOW_PRIVATE_NETWORKS": "true",
        "STEMBOT_ALLOW_PRIVATE_CALLBACKS": "true",
    }


async def test_api_node_and_worker_node_share_jobs_progress_and_cancel(
        tmp_path: Path, pg_url: str, origin: Origin, long_wav: bytes) -> None:
    """A job created on an API-only node runs on the worker node; its progress and result are
    read on the API node; a CancelJob there stops the next job on the worker within seconds."""
    origin.files["long.wav"] = long_wav
    clip = origin.url + "/files/clip.wav"
    async with serving(tmp_path / "api", database=pg_url, workers=0) as api_node, \
            worker_node(tmp_path / "worker", pg_url) as worker:
        api, key = api_node.api, api_node.api.key
        created = await api.ok("CreateJob", {
            "callback": origin.url + "/callback", "inputs": [{"url": clip}, {"url": clip}],
            "outputs": [{"inputSelectors": [0, 1],
                         "smartContentDescriptor": {"musicSeperate": {"method": 1}}}]})
        job_id = created["job"]["id"]
        # the first of its two separations is done: the worker's progress, read here
        seen = await api.until(job_id, lambda job: job["state"] > 2 or (
            job["state"] == 2 and job["progress"] >= 50))
        assert seen["state"] == 2 and 50 <= seen["progress"] <= 99, seen
        row = await store_job(api_node)(job_id)
        assert row.lease_node == worker.settings.node != api_node.settings.node
        done = await api.wait(job_id)
        assert done["state"] == 3, done
        results = done["outputs"][0]["smartContentResult"]["musicSeperate"]
        assert len(results) == 4
        folder = worker.settings.content_dir / key.default_content
        assert sorted(p.name for p in folder.iterdir()) == sorted(r["fileName"] for r in results)
        assert await worker.content.staged() == []
        body, headers = await origin.wait_callback(job_id)
        assert signed(body, headers, key.secret_key)

        long_job = (await api.create([{"url": origin.url + "/files/long.wav"}]))["id"]
        await api.until(long_job, lambda job: job["state"] == 2 and job["progress"] > 0)
        canceled_at = time.monotonic()
        canceled = await api.ok("CancelJob", {"id": long_job})
        assert canceled["job"]["state"] == 5
        # well before the 30 s lease could run out: the cancel reached the worker
        stopped = await row_until(api_node, long_job, lambda job: job.lease_until == 0,
                                  within=20)
        assert time.monotonic() - canceled_at < 20
        assert stopped.state.value == 5
        assert not list(folder.glob(f"{long_job}-*"))

        # DeleteJob of a job running on the worker: answered once that run has let go
        doomed = (await api.create([{"url": origin.url + "/files/long.wav"}]))["id"]
        await api.until(doomed, lambda job: job["state"] == 2 and job["progress"] > 0)
        deleted = (await api.ok("DeleteJob", {"id": doomed}))["job"]
        assert deleted["state"] == 5 and "deletedAt" in deleted
        assert (await store_job(api_node)(doomed)).lease_until == 0


async def test_a_stopped_then_a_killed_worker_node_hands_the_job_on(
        tmp_path: Path, pg_url: str, origin: Origin, long_wav: bytes,
        servers: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM: the job is back in the queue at once (not after its 30 s lease). kill -9: it
    runs on another node once the dead one's short lease expired."""
    origin.files["long.wav"] = long_wav
    async with serving(tmp_path / "api", database=pg_url, workers=0) as api_node:
        api = api_node.api
        job_id = (await api.create([{"url": origin.url + "/files/long.wav"}]))["id"]
        servers.append(start("worker", node_env(tmp_path / "w1", pg_url, "w1", 30),
                           tmp_path / "w1.log"))
        await row_until(api_node, job_id, lambda job: job.lease_node == "w1")
        stopping = time.monotonic()
        servers[0].send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(servers[0].wait, 30) == 0
        requeued = await row_until(api_node, job_id, lambda job: job.state.value == 1,
                                   within=20)
        assert time.monotonic() - stopping < 25 and requeued.restarts == 1  # lease: 30 s

        servers.append(start("worker", node_env(tmp_path / "w2", pg_url, "w2", LEASE),
                           tmp_path / "w2.log"))
        await row_until(api_node, job_id, lambda job: job.lease_node == "w2")
        assert await pool_workers(servers[1].pid), "w2 separates in a worker process"
        os.killpg(servers[1].pid, signal.SIGKILL)
        await asyncio.to_thread(servers[1].wait)
        assert (await store_job(api_node)(job_id)).state.value == 2  # nobody knows yet

        async with worker_node(tmp_path / "w3", pg_url, node_name="w3"):
            done = await api.wait(job_id, within=120)
            row = await store_job(api_node)(job_id)
        assert done["state"] == 3, done
        assert (row.attempt, row.restarts, row.lease_node) == (3, 2, "")


async def test_a_job_on_postgresql_survives_a_server_restart(
        tmp_path: Path, postgres: PostgresCluster, pg_url: str, origin: Origin) -> None:
    """A real job through HTTP on PostgreSQL; the server restarts while it runs."""
    async with serving(tmp_path / "data", database=pg_url) as running:
        api, key = running.api, running.api.key
        created = await api.create([{"url": origin.url + "/files/clip.wav"}],
                                   callback=origin.url + "/callback")
        await api.wait(created["id"], states=(2,))
        await asyncio.to_thread(postgres.restart)
        done = await api.wait(created["id"], within=120)
        assert done["state"] == 3, done
        assert [r["tone"] for r in done["outputs"][0]["smartContentResult"]["musicSeperate"]
                ] == [1, 5]
        body, headers = await origin.wait_callback(created["id"])
        assert signed(body, headers, key.secret_key)


async def test_a_database_down_past_the_retries_answers_503_then_recovers(
        tmp_path: Path, postgres: PostgresCluster, pg_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No 500 while PostgreSQL is away: a clear 503 naming the database, and service again
    as soon as it is back, without a restart of the node."""
    monkeypatch.setattr("db.postgres.RETRY_WAITS", (0.1, 0.2))
    async with serving(tmp_path / "api", database=pg_url, workers=0) as running:
        api = running.api
        await asyncio.to_thread(postgres.stop)
        try:
            status, body = await api.call("ListJobs", {})
        finally:
            await asyncio.to_thread(postgres.start, postgres.host, postgres.port)
        assert status == 503, body
        assert body["error"]["code"] == "DATABASE_UNAVAILABLE"
        assert "database" in body["error"]["message"]
        # back by itself: the pool reconnects (after its own backoff), no restart of the node
        async with asyncio.timeout(30):
            while (status := (await api.call("ListJobs", {}))[0]) != 200:
                assert status == 503
                await asyncio.sleep(0.5)


async def test_api_nodes_share_the_link_secret_through_the_database(
        tmp_path: Path, pg_url: str) -> None:
    async with serving(tmp_path / "one", database=pg_url, workers=0) as one, \
            serving(tmp_path / "two", database=pg_url, workers=0) as two:
        secrets = [node.service.runner.app[SERVICE].link_secret for node in (one, two)]
        assert secrets[0] == secrets[1] and len(secrets[0]) == 64
        assert not (tmp_path / "one" / "link-secret").exists()


def new_job(job_id: str, owner: str, content_id: str) -> Job:
    return Job(id=job_id, owner=owner, custom_id="", callback="", state=State.SUBMITTED,
               inputs=(InputSpec(url="http://h/a.wav"),),
               outputs=(OutputSpec(content_id, "/", (0,), StemPreset.TWO_STEMS),),
               created_at=now_ms(), deadline=now_ms() + 60_000)


async def stage(service: Service, job: Job, text: bytes, tmp_path: Path) -> tuple[OutputSpec, ...]:
    """The attempt's one stem staged, as its run leaves it; the outputs it would commit."""
    name = f"{job.id}-0-vocals.wav"
    source = tmp_path / f"{job.id}-{job.attempt}.wav"
    source.write_bytes(text)
    await service.content.stage(job.id, job.attempt, 0, name, source)
    return (replace(job.outputs[0], results=(Result(Tone.VOCALS, name),)),)


async def read(service: Service, content_id: str, rel: str) -> bytes:
    async with service.content.local_files([(content_id, rel)]) as (path,):
        return await asyncio.to_thread(path.read_bytes)


async def test_a_stale_attempt_never_replaces_the_winners_files_and_publishes_finish(
        tmp_path: Path, pg_url: str) -> None:
    async with serving(tmp_path / "node", database=pg_url, workers=0) as node:
        service = node.service.runner.app[SERVICE]
        store, key = service.store, node.api.key
        assert await store.insert_job(new_job("j", key.secret_id, key.default_content), 10)
        stale = await store.claim_next("old-node", 1)
        assert stale is not None
        await store.expire_leases(3, at=now_ms() + 2_000)  # its node was cut off
        winner = await store.claim_next("new-node", 30)
        assert winner is not None
        stale_outputs = await stage(service, stale, b"stale", tmp_path)
        winner_outputs = await stage(service, winner, b"winner", tmp_path)
        # the stale attempt comes back and tries to commit: refused, its staging removed
        assert await service.runner._pipeline.commit(stale, stale_outputs) is None
        assert await service.content.staged("j") == [f"j.{winner.attempt}.0.j-0-vocals.wav"]
        done = await service.runner._pipeline.commit(winner, winner_outputs)
        assert done is not None and done.wire()["state"] == 3
        assert await read(service, key.default_content, "j-0-vocals.wav") == b"winner"
        assert await service.content.staged() == []
        stale_outputs = await stage(service, stale, b"stale again", tmp_path)
        assert await service.runner._pipeline.commit(stale, stale_outputs) is None
        assert await read(service, key.default_content, "j-0-vocals.wav") == b"winner"
        assert await service.content.staged() == []

        # a node died between committing and publishing: another node finishes the publish
        assert await store.insert_job(new_job("k", key.secret_id, key.default_content), 10)
        dead = await store.claim_next("dead-node", 30)
        assert dead is not None
        outputs = await stage(service, dead, b"published", tmp_path)
        await store.finish("k", State.COMPLETED, outputs=outputs, attempt=dead.attempt,
                           publishing=True, lease_s=1)
        shown = await node.api.job("k")
        assert (shown["state"], shown["progress"]) == (2, 99)
        finished = await node.api.wait("k", within=10)
        assert finished["state"] == 3
        assert finished["outputs"][0]["smartContentResult"]["musicSeperate"][0]["fileName"] \
            == "k-0-vocals.wav"
        assert await read(service, key.default_content, "k-0-vocals.wav") == b"published"


async def test_a_publish_refused_for_good_holds_up_no_other_publish(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two jobs a dead node left publishing; the first one's store refuses its file for good
    (a read-only disk): it is published without it, and the second still is, in full."""
    async with serving(tmp_path / "node", workers=0) as node:
        service = node.service.runner.app[SERVICE]
        store, key = service.store, node.api.key
        for job_id in ("bad", "good"):
            assert await store.insert_job(new_job(job_id, key.secret_id, key.default_content), 9)
            claim = await store.claim_next("dead-node", 30)
            assert claim is not None and claim.id == job_id
            outputs = await stage(service, claim, job_id.encode(), tmp_path)
            await store.finish(job_id, State.COMPLETED, outputs=outputs, attempt=claim.attempt,
                               publishing=True, lease_s=1)
        publish = service.content.publish

        async def read_only(job_id: str, *args: Any) -> None:
            if job_id == "bad":
                raise PermissionError(13, "Read-only file system")
            await publish(job_id, *args)

        monkeypatch.setattr(service.content, "publish", read_only)
        assert (await node.api.wait("good", within=15))["state"] == 3
        assert await read(service, key.default_content, "good-0-vocals.wav") == b"good"
        assert (await node.api.wait("bad", within=15))["state"] == 3


async def test_a_node_stopped_mid_publish_keeps_the_results_for_its_next_start(
        tmp_path: Path, origin: Origin, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM (a drain) while the stems move into place: the committed results survive,
    and the next start publishes them; nothing is thrown away by the stopped run."""
    data = tmp_path / "data"
    moving = asyncio.Event()

    async def stuck(*args: Any) -> None:  # a publish that takes longer than the drain
        moving.set()
        await asyncio.Event().wait()

    async with serving(data) as running:
        service = running.service.runner.app[SERVICE]
        key = running.api.key
        monkeypatch.setattr(service.content, "publish", stuck)
        created = await running.api.create([{"url": origin.url + "/files/clip.wav"}])
        async with asyncio.timeout(120):
            await moving.wait()
    assert await service.content.staged(created["id"]), "the stopped run kept its stems"
    monkeypatch.undo()
    async with serving(data) as again:
        done = await again.api.wait(created["id"], within=30, key=key)
        assert done["state"] == 3, done
        output = done["outputs"][0]
        for result in output["smartContentResult"]["musicSeperate"]:
            status, body = await again.api.raw(
                "GET", f"/content/{output['contentId']}/{result['fileName']}",
                headers=basic_header(key))
            assert status == 200 and body[:4] == b"RIFF"


@pytest.mark.parametrize(("command", "changes", "says"), [
    ("serve", {"STEMBOT_DATABASE_URL": "mysql://u:sekret@db/x"},
     "error: STEMBOT_DATABASE_URL must be empty (SQLite in the data folder) or a postgresql://"),
    ("serve", {"STEMBOT_DATABASE_URL": "postgresql://u:sekret@127.0.0.1:1/x"},
     "cannot connect to PostgreSQL at 127.0.0.1:1/x: connection failed"),
    # libpq quotes what it cannot parse, the password too: the message must not show it
    ("serve", {"STEMBOT_DATABASE_URL": "postgresql://u:x%zzsekret@127.0.0.1:1/x"},
     "error: STEMBOT_DATABASE_URL is not a valid PostgreSQL URL (invalid percent-encoded"),
    ("worker", {"STEMBOT_WORKERS": "0"}, "error: stembot worker needs STEMBOT_WORKERS of 1"),
    ("serve", {"STEMBOT_LEASE_SECONDS": "0.5"}, "error: STEMBOT_LEASE_SECONDS must be at least 1"),
])
def test_bad_node_settings_say_why_in_one_line(
        tmp_path: Path, command: str, changes: dict[str, str], says: str) -> None:
    env = os.environ | {"STEMBOT_DATA_DIR": str(tmp_path), "STEMBOT_WORKERS": "0"} | changes
    done = subprocess.run([sys.executable, "-m", "stembot", command], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(says), lines
    assert "sekret" not in done.stderr + done.stdout


async def test_a_start_removes_stems_staged_for_no_open_job(tmp_path: Path) -> None:
    data = tmp_path / "data"
    left = data / "content" / ".staging" / "ghost.1.0.ghost-0-vocals.wav"
    left.parent.mkdir(parents=True)
    left.write_bytes(b"a killed run's stem")
    async with serving(data, workers=0) as running:
        assert not left.exists()
        assert await running.service.runner.app[SERVICE].content.staged() == []


async def test_two_nodes_on_postgresql_and_s3_share_inputs_and_results(
        tmp_path: Path, pg_url: str, s3_storage: dict[str, Any], short_wav: Path) -> None:
    """The whole multi-machine setup: a file uploaded to the API node is separated on the
    worker node, and its stems are downloaded from the API node; nothing stays staged."""
    async with serving(tmp_path / "api", storage=s3_storage, database=pg_url,
                       workers=0) as api_node, \
            worker_node(tmp_path / "worker", pg_url, **s3_storage) as worker:
        api, key = api_node.api, api_node.api.key
        status, _ = await api.raw("PUT", f"/content/{key.default_content}/in/clip.wav",
                                  data=await asyncio.to_thread(short_wav.read_bytes),
                                  headers=basic_header(key))
        assert status == 201
        created = await api.create([{"source": {"contentId": key.default_content,
                                                "path": "in/clip.wav"}}])
        done = await api.wait(created["id"], within=120)
        assert done["state"] == 3, done
        for result in done["outputs"][0]["smartContentResult"]["musicSeperate"]:
            status, data = await api.raw("GET", f"/content/{key.default_content}/"
                                         f"{result['fileName']}", headers=basic_header(key))
            assert status == 200 and data[:4] == b"RIFF"
        assert await worker.content.staged() == []
        assert not (worker.settings.content_dir).exists()  # no local file store was used


async def test_an_api_only_node_needs_no_model_files(tmp_path: Path) -> None:
    models = tmp_path / "no-models"
    models.mkdir()
    async with serving(tmp_path / "data", workers=0, model_dir=models) as running:
        assert (await running.api.ok("ListJobs", {}))["total"] == 0
