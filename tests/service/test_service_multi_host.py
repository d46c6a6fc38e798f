"""Several machines: PostgreSQL + SeaweedFS on one host, two API hosts, two worker hosts.

Every host is a Linux network namespace on a private bridge (support/netns.py); the nodes
are real `stembot serve` / `stembot worker` processes, the jobs run the real model, and each
scenario checks what a client sees and that nothing is lost or doubled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from service_harness import Api, basic_header

from separation import OutputFormat, encode, synth
from service.store import NewKey
from support.netns import Host, Network, inside, require_netns
from support.nodes import Node, log_ready, serve, start_node, stembot
from support.postgres import PostgresCluster
from support.seaweed import SeaweedFS

API_PORT = 8080
ORIGIN_PORT = 8099
BUCKET = "stembot"
LEASE = 4  # seconds: a dead or cut-off worker's job is free again this soon
REPO = Path(__file__).resolve().parents[2]


def song(path: Path, seconds: float) -> Path:
    mix = np.sum(list(synth.demo_clip(seconds).values()), axis=0)
    return encode(path, mix, OutputFormat.WAV)


@dataclass
class Cluster:
    """The hosts, the shared servers, the nodes that are running, and two keys."""

    net: Network
    root: Path
    postgres: PostgresCluster
    seaweed: SeaweedFS
    database: str
    nodes: dict[str, Node] = field(default_factory=dict)
    keys: list[NewKey] = field(default_factory=list)

    def host(self, name: str) -> Host:
        return self.net[name]

    def env(self, name: str, workers: int) -> dict[str, str]:
        """Every setting explicit: the test's own environment must not leak into the nodes."""
        return {
            "STEMBOT_DATABASE_URL": self.database,
            **self.seaweed.env(f"s3://{BUCKET}"),
            "STEMBOT_DATA_DIR": str(self.root / name / "data"),
            "STEMBOT_MODEL_DIR": str(REPO / "models"),
            "STEMBOT_NODE_NAME": name,
            "STEMBOT_WORKERS": str(workers),
            "STEMBOT_WORKER_THREADS": "1",
            "STEMBOT_LEASE_SECONDS": str(LEASE),
            "STEMBOT_LINK_SECRET": "multi-host-test-secret-0123456789abcdef",
            "STEMBOT_RESULT_CACHE": "off",  # every job really runs
            "STEMBOT_ALLOW_PRIVATE_NETWORKS": "true",  # inputs come from the client host
            "STEMBOT_CALLBACK_ALLOW": f"{self.host('client').address}:{ORIGIN_PORT}",
            "STEMBOT_CALLBACK_BACKOFF": "0.5",
            "STEMBOT_S3_RETRY_SECONDS": "60",
            "STEMBOT_S3_TIMEOUT": "3",
            "STEMBOT_MIN_FREE_BYTES": "0",
            "STEMBOT_PUBLIC_URL": "",
        }

    def start(self, name: str) -> Node:
        """`stembot serve` (API only) on api hosts, `stembot worker` on worker hosts."""
        old = self.nodes.get(name)
        if old is not None and old.alive:
            return old
        host, log = self.host(name), self.root / f"{name}.log"
        (self.root / name).mkdir(exist_ok=True)
        if name.startswith("api"):
            node = serve(host, self.env(name, 0), log, port=API_PORT, cwd=self.root / name)
        else:
            node = start_node(host, stembot("worker"), env=self.env(name, 1), log=log,
                              ready=log_ready(log, "worker node"), cwd=self.root / name)
        self.nodes[name] = node
        return node

    def kill(self, name: str) -> None:
        self.host(name).kill_all()
        self.nodes.pop(name, None)

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def claims(self, name: str) -> list[tuple[str, str]]:
        """(log time, job id) of every claim the node logged, to order claims across nodes."""
        return [(line[:23], line.split(" job ", 1)[1].split()[0])
                for line in self.log(name).splitlines() if ": claimed by " in line]

    def sql(self, query: str) -> list[list[str]]:
        """A query on the shared database, asked from the database host itself."""
        done = self.host("db").run(["psql", self.database, "-At", "-F", "\t", "-c", query])
        return [line.split("\t") for line in done.stdout.splitlines() if line]

    def lease_node(self, job_id: str) -> str:
        rows = self.sql(f"SELECT lease_node FROM jobs WHERE id='{job_id}'")
        return rows[0][0] if rows else ""


def make_key(cluster: Cluster, name: str) -> NewKey:
    done = cluster.host("api1").run(stembot("keys", "create", "--name", name),
                                    env=cluster.env("api1", 0))
    raw = json.loads(done.stdout)
    return NewKey(raw["secretId"], raw["secretKey"], raw["contentId"])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_netns()
    root = tmp_path_factory.mktemp("hosts")
    os.chmod(root, 0o755)
    with Network(["db", "s3", "api1", "api2", "w1", "w2", "client"]) as net:
        postgres = PostgresCluster().init()
        postgres.start(net["db"].address, netns=net["db"].netns)
        seaweed = SeaweedFS(root / "seaweed", wrap=["ip", "netns", "exec", net["s3"].netns])
        with inside(net["s3"]._fd):  # its readiness probe and the bucket: from its own host
            seaweed.start(net["s3"].address)
            seaweed.create_bucket(BUCKET)
        try:
            database = postgres.create_database("stembot")
            cluster = Cluster(net, root, postgres, seaweed, database)
            cluster.keys = [make_key(cluster, "alice"), make_key(cluster, "bob")]
            for name in ("api1", "api2", "w1", "w2"):
                cluster.start(name)
            yield cluster
        finally:
            seaweed.stop()
            postgres.remove()


@dataclass
class Origin:
    """On the client host: the songs to fetch, and a callback receiver."""

    url: str
    callbacks: list[tuple[str, int]] = field(default_factory=list)  # (job id, attempt header)

    def delivered(self, job_id: str) -> int:
        return sum(1 for jid, _ in self.callbacks if jid == job_id)


@contextlib.asynccontextmanager
async def client_side(cluster: Cluster, songs: dict[str, Path]
                      ) -> AsyncIterator[tuple[Origin, aiohttp.ClientSession]]:
    """The origin server and an HTTP client, both on the client host."""
    client = cluster.host("client")
    origin = Origin(f"http://{client.address}:{ORIGIN_PORT}")

    async def file(request: web.Request) -> web.FileResponse:
        return web.FileResponse(songs[request.match_info["name"]])

    async def callback(request: web.Request) -> web.Response:
        body = await request.json()
        origin.callbacks.append((body["id"], int(request.headers["X-Stembot-Delivery-Attempt"])))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/files/{name}", file)
    app.router.add_post("/callback", callback)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.SockSite(runner, client.listen(ORIGIN_PORT)).start()
    connector = aiohttp.TCPConnector(socket_factory=client.socket_factory, force_close=True)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            yield origin, session
    finally:
        await runner.cleanup()


def api(cluster: Cluster, session: aiohttp.ClientSession, name: str, key: int = 0) -> Api:
    return Api(session, f"http://{cluster.host(name).address}:{API_PORT}", cluster.keys[key])


async def submit(node: Api, origin: Origin, name: str) -> str:
    job = await node.create([{"url": f"{origin.url}/files/{name}"}], method=1,
                            callback=f"{origin.url}/callback")
    return str(job["id"])


async def until(check: Any, within: float, what: str) -> None:
    """Wait for a condition that another process makes true."""
    end = time.monotonic() + within
    while not await check():
        if time.monotonic() > end:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.2)


async def stems_of(node: Api, job: dict[str, Any]) -> dict[str, bytes]:
    """Every result file of a COMPLETED job, read through this API node."""
    output = job["outputs"][0]
    files = {}
    for result in output["smartContentResult"]["musicSeperate"]:
        status, body = await node.raw(
            "GET", f"/content/{output['contentId']}/{result['fileName']}",
            headers=basic_header(node.key))
        assert status == 200, (status, result)
        files[result["fileName"]] = body
    return files


@pytest.fixture(scope="module")
def songs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("songs")
    os.chmod(folder, 0o755)
    return {"short.wav": song(folder / "short.wav", 5.0),
            "long.wav": song(folder / "long.wav", 30.0)}


@pytest.fixture
def up(cluster: Cluster) -> Cluster:
    """Every node running at a scenario's start (an earlier one may have killed some)."""
    for name in ("api1", "api2", "w1", "w2"):
        cluster.host(name).link_up()
        cluster.start(name)
    return cluster


async def test_jobs_from_one_api_host_run_on_both_workers_and_read_from_the_other(
        up: Cluster, songs: dict[str, Path]) -> None:
    async with client_side(up, songs) as (origin, session):
        one, two = api(up, session, "api1"), api(up, session, "api2")
        ids = [await submit(one, origin, "short.wav") for _ in range(4)]
        jobs = [await two.wait(job_id, within=240) for job_id in ids]
        assert [job["state"] for job in jobs] == [3] * 4, jobs
        runs = {job_id: up.sql(f"SELECT attempt FROM jobs WHERE id='{job_id}'")[0][0]
                for job_id in ids}
        assert set(runs.values()) == {"1"}  # each claimed once
        ran = {name for name in ("w1", "w2")
               if any(f"job {i} attempt 1: claimed by {name}" in up.log(name) for i in ids)}
        assert ran == {"w1", "w2"}, "both workers take jobs"
        for job in jobs:
            assert len(await stems_of(two, job)) == 2
        await until(lambda: _true(all(origin.delivered(i) for i in ids)), 30, "callbacks")


async def _true(value: bool) -> bool:
    return value


async def running_on(cluster: Cluster, node: Api, job_id: str, within: float = 120) -> str:
    """The worker whose lease the job is under, once it has made progress."""
    async def started() -> bool:
        job = await node.job(job_id)
        return job["state"] == 2 and job.get("progress", 0) > 0
    await until(started, within, f"job {job_id} running")
    return cluster.lease_node(job_id)


async def test_a_worker_host_killed_mid_job_the_other_completes_it(
        up: Cluster, songs: dict[str, Path]) -> None:
    async with client_side(up, songs) as (origin, session):
        one = api(up, session, "api1")
        job_id = await submit(one, origin, "long.wav")
        victim = await running_on(up, one, job_id)
        up.kill(victim)
        job = await one.wait(job_id, within=300)
        assert job["state"] == 3, job
        assert up.lease_node(job_id) == "" and up.sql(
            f"SELECT attempt FROM jobs WHERE id='{job_id}'")[0][0] == "2"
        assert len(await stems_of(api(up, session, "api2"), job)) == 2
        await until(lambda: _true(origin.delivered(job_id) >= 1), 30, "callback")


async def test_a_worker_host_cut_off_mid_job_loses_it_and_changes_nothing_when_back(
        up: Cluster, songs: dict[str, Path]) -> None:
    async with client_side(up, songs) as (origin, session):
        one = api(up, session, "api1")
        job_id = await submit(one, origin, "long.wav")
        victim = await running_on(up, one, job_id)
        up.host(victim).link_down()
        try:
            job = await one.wait(job_id, within=300)
            assert job["state"] == 3, job
            winner = await stems_of(one, job)
        finally:
            up.host(victim).link_up()
        # back online, the stale run finds its lease gone: it writes nothing more
        await until(lambda: _true("no longer this run's" in up.log(victim)
                                  or "another run ended the job" in up.log(victim)),
                    90, "the stale worker to give the job up")
        await asyncio.sleep(LEASE)
        again = await one.job(job_id)
        assert again["state"] == 3 and again["outputs"] == job["outputs"]
        assert await stems_of(one, again) == winner
        await until(lambda: _true(origin.delivered(job_id) >= 1), 30, "callback")


async def test_an_api_host_killed_the_other_serves_every_job_and_its_links(
        up: Cluster, songs: dict[str, Path]) -> None:
    async with client_side(up, songs) as (origin, session):
        one, two = api(up, session, "api1"), api(up, session, "api2")
        job_id = await submit(one, origin, "short.wav")
        job = await one.wait(job_id, within=240)
        output = job["outputs"][0]
        name = output["smartContentResult"]["musicSeperate"][0]["fileName"]
        link = (await one.ok("CreateLink", {"contentId": output["contentId"],
                                            "path": name}))["url"]
        up.kill("api1")
        assert (await two.job(job_id))["state"] == 3
        moved = link.replace(up.host("api1").address, up.host("api2").address)
        async with session.get(moved) as response:
            assert response.status == 200
            assert await response.read() == (await stems_of(two, job))[name]


async def test_postgresql_restarted_mid_job_every_node_reconnects(
        up: Cluster, songs: dict[str, Path]) -> None:
    async with client_side(up, songs) as (origin, session):
        one, two = api(up, session, "api1"), api(up, session, "api2")
        job_id = await submit(one, origin, "long.wav")
        await running_on(up, one, job_id)
        up.postgres.restart()
        job = await two.wait(job_id, within=300)
        assert job["state"] == 3, job
        assert len(await stems_of(one, job)) == 2


async def test_the_object_store_cut_off_for_a_while_the_job_completes(
        up: Cluster, songs: dict[str, Path]) -> None:
    async with client_side(up, songs) as (origin, session):
        one = api(up, session, "api1")
        job_id = await submit(one, origin, "short.wav")
        up.host("s3").link_down()  # the input is downloaded, the results cannot go anywhere
        try:
            await asyncio.sleep(12)
        finally:
            up.host("s3").link_up()
        job = await one.wait(job_id, within=240)
        assert job["state"] == 3, job
        assert len(await stems_of(one, job)) == 2


async def test_fair_share_between_keys_and_cancel_from_the_other_api_host(
        up: Cluster, songs: dict[str, Path]) -> None:
    async with client_side(up, songs) as (origin, session):
        one = api(up, session, "api1")
        bob = api(up, session, "api1", key=1)
        for name in ("w1", "w2"):
            up.nodes[name].stop()  # a clean stop: nothing claims while the queue fills
        alice_ids = [await submit(one, origin, "long.wav") for _ in range(3)]
        bob_id = await submit(bob, origin, "short.wav")
        # One node first: its claims are serial, so its log is the claim order (two nodes'
        # log lines can land out of claim order on a loaded machine).
        up.start("w1")
        await running_on(up, one, alice_ids[0])
        await until(lambda: _job_state(bob, bob_id, (2, 3)), 120, "bob's job to be claimed")
        # one job of each key before alice's second: bob's single job is not behind alice's
        # queue (which key goes first depends on their claims of the last hour: the tests
        # before this one ran alice's jobs)
        ours = {*alice_ids, bob_id}
        order = [job_id for _, job_id in up.claims("w1") if job_id in ours]
        assert sorted(order[:2]) == sorted([alice_ids[0], bob_id]), order
        up.start("w2")
        # cancel alice's first job from the other API host while a worker runs it
        two = api(up, session, "api2")
        await two.ok("CancelJob", {"id": alice_ids[0]})
        await until(lambda: _lease_free(up, alice_ids[0]), 30, "the worker to stop the job")
        assert (await one.job(alice_ids[0]))["state"] == 5
        for job_id in alice_ids[1:]:
            await two.ok("CancelJob", {"id": job_id})
        assert (await bob.wait(bob_id, within=240))["state"] == 3


async def _job_state(node: Api, job_id: str, states: tuple[int, ...]) -> bool:
    return (await node.job(job_id))["state"] in states


async def _lease_free(cluster: Cluster, job_id: str) -> bool:
    return await asyncio.to_thread(cluster.lease_node, job_id) == ""

