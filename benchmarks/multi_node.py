"""Several nodes (not a test): songs per hour on one and on two worker nodes, and GetJob latency
across two API nodes while the workers separate.

Starts a throwaway PostgreSQL and SeaweedFS on loopback, two API-only `stembot serve` nodes and
one or two `stembot worker` nodes, each worker node pinned to a core of its own (taskset) with
one single-threaded worker. A queue of rendered songs is submitted through API node 1; while
the workers separate them, C clients per API node poll GetJob on both.

    .venv/bin/python -m benchmarks.multi_node --songs 6 --seconds 20 --concurrency 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.service_load import Client, free_port, summary, table, wait_up
from benchmarks.worker_throughput import song
from service.store import NewKey
from support.postgres import PostgresCluster
from support.seaweed import SeaweedFS

BUCKET = "bench"


def node_env(base: dict[str, str], folder: Path, name: str, workers: int) -> dict[str, str]:
    return {**base, "STEMBOT_DATA_DIR": str(folder / name), "STEMBOT_NODE_NAME": name,
            "STEMBOT_WORKERS": str(workers), "STEMBOT_WORKER_THREADS": "1"}


def spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)


def make_key(env: dict[str, str]) -> NewKey:
    done = subprocess.run([sys.executable, "-m", "stembot", "keys", "create", "--name", "bench"],
                          env=env, capture_output=True, text=True, check=True)
    raw = json.loads(done.stdout)
    return NewKey(raw["secretId"], raw["secretKey"], raw["contentId"])


async def poll(clients: list[Client], job_ids: list[str], stop: asyncio.Event,
               concurrency: int) -> list[float]:
    """GetJob from `concurrency` loops per API node, round the queue's jobs, until `stop`."""
    latencies: list[float] = []

    async def one(client: Client, turn: int) -> None:
        while not stop.is_set():
            started = time.perf_counter()
            await client.call("GetJob", "getJobRequest", {"id": job_ids[turn % len(job_ids)]})
            latencies.append(time.perf_counter() - started)
            turn += 1

    await asyncio.gather(*(one(c, n) for c in clients for n in range(concurrency)))
    return latencies


async def queue_rate(api: list[Client], urls: list[str], concurrency: int
                     ) -> tuple[float, float, list[float]]:
    """Seconds for the whole queue, songs per hour, and the GetJob latencies seen meanwhile."""
    started = time.perf_counter()
    ids = []
    for url in urls:
        created = await api[0].call("CreateJob", "createJobRequest", {
            "inputs": [{"url": url}],
            "outputs": [{"inputSelectors": [0],
                         "smartContentDescriptor": {"musicSeperate": {"method": 2}}}]})
        ids.append(created["createJobResponse"]["job"]["id"])
    stop = asyncio.Event()
    poller = asyncio.create_task(poll(api, ids, stop, concurrency))
    for job_id in ids:
        while True:
            job = (await api[1].call("GetJob", "getJobRequest", {"id": job_id}))
            state = job["getJobResponse"]["job"]["state"]
            if state >= 3:
                if state != 3:
                    raise RuntimeError(job)
                break
            await asyncio.sleep(0.5)
    elapsed = time.perf_counter() - started
    stop.set()
    return elapsed, len(urls) * 3600 / elapsed, await poller


async def run(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="stembot-nodes-"))
    os.chmod(folder, 0o755)
    postgres = PostgresCluster().init().start()
    seaweed = SeaweedFS(folder / "seaweed")
    seaweed.start()
    seaweed.create_bucket(BUCKET)
    songs = [song(folder, n, args.seconds) for n in range(args.songs)]
    processes: list[subprocess.Popen[bytes]] = []
    results: dict[str, Any] = {}
    try:
        for layout in args.layouts:
            database = postgres.create_database()
            base = {**os.environ, "STEMBOT_DATABASE_URL": database,
                    **seaweed.env(f"s3://{BUCKET}/{layout}"), "STEMBOT_RESULT_CACHE": "off",
                    "STEMBOT_ALLOW_PRIVATE_NETWORKS": "true", "STEMBOT_MIN_FREE_BYTES": "0",
                    "STEMBOT_LINK_SECRET": "benchmark-link-secret-0123456789abcdef"}
            key = make_key(node_env(base, folder, "api1", 0))
            ports = [free_port(), free_port()]
            for n, port in enumerate(ports):
                env = {**node_env(base, folder, f"api{n + 1}", 0), "STEMBOT_PORT": str(port)}
                processes.append(spawn([sys.executable, "-m", "stembot", "serve"], env,
                                       folder / f"{layout}-api{n + 1}.log"))
            for core in range(layout):
                env = node_env(base, folder, f"w{core + 1}-{layout}", 1)
                processes.append(spawn(["taskset", "-c", str(core), sys.executable, "-m",
                                        "stembot", "worker"], env, folder / f"w{core}.log"))
            for api_url in (f"http://127.0.0.1:{p}" for p in ports):
                await wait_up(api_url)
            files = await serve_songs(songs)
            async with aiohttp.ClientSession() as session:
                api = [Client(session, f"http://127.0.0.1:{p}", key) for p in ports]
                await asyncio.sleep(10)  # the workers load the model
                queue = [f"{files[1]}/{s.name}" for s in songs]
                elapsed, rate, latencies = await queue_rate(api, queue, args.concurrency)
            await files[0].cleanup()
            rows = summary({"GetJob": latencies}, elapsed)
            results[str(layout)] = {"songs_per_hour": rate, "getjob": rows["GetJob"]}
            print(f"{layout} worker node(s): {rate:.0f} songs/h")
            print(table(f"GetJob across two API nodes, {layout} worker node(s) separating",
                        rows))
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(30)
            processes.clear()
    finally:
        for process in processes:
            process.kill()
        seaweed.stop()
        postgres.remove()
        shutil.rmtree(folder, ignore_errors=True)
    return results


async def serve_songs(songs: list[Path]) -> tuple[Any, str]:
    from aiohttp import web

    by_name = {s.name: s for s in songs}
    app = web.Application()

    async def file(request: web.Request) -> web.FileResponse:
        return web.FileResponse(by_name[request.match_info["name"]])

    app.router.add_get("/{name}", file)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--songs", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--layouts", type=int, nargs="+", default=[1, 2],
                        help="worker nodes per run, one core each")
    parser.add_argument("--json")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
