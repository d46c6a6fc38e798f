"""Load benchmark (not a test): GetJob/ListJobs throughput and latency while a job separates.

Starts `stembot serve` in a subprocess on a temporary data folder, serves a rendered clip on
loopback, creates one separation job, and once it is PROCESSING (model loaded, chunks running)
hammers GetJob and ListJobs from C concurrent clients for S seconds. The same load on the idle
server first gives the baseline.

    .venv/bin/python benchmarks/service_load.py --seconds 15 --concurrency 8

Then, on the idle server, the time from CreateJob to COMPLETED of a new song and of the same
song again (a result-cache hit).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from aiohttp import web

from separation import OutputFormat, encode, synth
from service.store import NewKey
from service.store_sql import SqlStore

Latencies = dict[str, list[float]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "stembot", "serve"], env=env,
                                stdout=subprocess.DEVNULL, stderr=out)


async def serve_clip(path: Path) -> tuple[web.AppRunner, str]:
    app = web.Application()

    async def clip(request: web.Request) -> web.FileResponse:
        return web.FileResponse(path)

    app.router.add_get("/clip.wav", clip)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/clip.wav"


class Client:
    def __init__(self, session: aiohttp.ClientSession, url: str, key: NewKey) -> None:
        self.session, self.url, self.key = session, url, key

    async def call(self, action: str, section: str, request: dict[str, Any]) -> dict[str, Any]:
        body = {
            "action": action,
            "secretId": self.key.secret_id,
            "secretKey": self.key.secret_key,
            section: request,
        }
        async with self.session.post(self.url + "/release/job", json=body) as response:
            answer: dict[str, Any] = await response.json()
            if response.status != 200:
                raise RuntimeError(answer)
            return answer


async def load(client: Client, job_id: str, seconds: float, concurrency: int) -> Latencies:
    """`concurrency` clients in a loop, half GetJob, half ListJobs, for `seconds`."""
    latencies: Latencies = {"GetJob": [], "ListJobs": []}
    deadline = time.perf_counter() + seconds

    async def one(worker: int) -> None:
        turn = worker
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            if turn % 2 == 0:
                await client.call("GetJob", "getJobRequest", {"id": job_id})
                latencies["GetJob"].append(time.perf_counter() - started)
            else:
                await client.call("ListJobs", "listJobsRequest", {"customId": "bench"})
                latencies["ListJobs"].append(time.perf_counter() - started)
            turn += 1

    await asyncio.gather(*(one(n) for n in range(concurrency)))
    return latencies


async def completion(client: Client, url: str) -> tuple[float, dict[str, Any]]:
    """Seconds from CreateJob to COMPLETED for one 4-stem job (polling GetJob every 0.1 s)."""
    started = time.perf_counter()
    created = await client.call("CreateJob", "createJobRequest", {
        "inputs": [{"url": url}],
        "outputs": [{"inputSelectors": [0],
                     "smartContentDescriptor": {"musicSeperate": {"method": 2}}}]})
    job_id = created["createJobResponse"]["job"]["id"]
    while True:
        job = (await client.call("GetJob", "getJobRequest", {"id": job_id}))["getJobResponse"]
        if job["job"]["state"] >= 3:
            break
        await asyncio.sleep(0.1)
    if job["job"]["state"] != 3:
        raise RuntimeError(f"job ended in {job['job']}")
    return time.perf_counter() - started, job["job"]


async def wait_final(client: Client, job_id: str) -> None:
    while True:  # polling the API, as a client without a callback does
        job = await client.call("GetJob", "getJobRequest", {"id": job_id})
        if job["getJobResponse"]["job"]["state"] >= 3:
            return
        await asyncio.sleep(0.2)


def summary(latencies: Latencies, seconds: float) -> dict[str, dict[str, float]]:
    rows = {}
    for action, values in latencies.items():
        ms = sorted(v * 1000 for v in values)
        rows[action] = {
            "requests": len(ms),
            "rps": len(ms) / seconds,
            "p50": statistics.median(ms),
            "p95": ms[int(0.95 * (len(ms) - 1))],
            "p99": ms[int(0.99 * (len(ms) - 1))],
            "max": ms[-1],
        }
    return rows


def table(title: str, rows: dict[str, dict[str, float]]) -> str:
    lines = [
        f"**{title}**",
        "",
        "| action | requests | req/s | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for action, r in rows.items():
        lines.append(
            f"| {action} | {r['requests']:.0f} | {r['rps']:.0f} | {r['p50']:.1f} |"
            f" {r['p95']:.1f} | {r['p99']:.1f} | {r['max']:.1f} |"
        )
    return "\n".join(lines)


async def wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as session, asyncio.timeout(60):
        while True:
            try:
                async with session.get(url + "/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.2)


async def run(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="stembot-bench-"))
    data = folder / "data"
    clip = encode(
        folder / "clip.wav",
        np.sum(list(synth.demo_clip(args.clip_seconds).values()), axis=0),
        OutputFormat.WAV,
    )
    store = await SqlStore.open(data / "service.sqlite3")
    key = await store.create_key("bench")
    await store.close()
    port = free_port()
    env = os.environ | {
        "STEMBOT_DATA_DIR": str(data),
        "STEMBOT_PORT": str(port),
        "STEMBOT_ALLOW_PRIVATE_NETWORKS": "true",
    }
    server = await asyncio.to_thread(start_server, env, folder / "server.log")
    clip_server, clip_url = await serve_clip(clip)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_up(url)
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            client = Client(session, url, key)
            # finished jobs under the same customId give ListJobs a page to render
            for _ in range(args.listed):
                first = await client.call(
                    "CreateJob",
                    "createJobRequest",
                    {
                        "customId": "bench",
                        "inputs": [{"url": url + "/missing.wav"}],
                        "outputs": [
                            {
                                "inputSelectors": [0],
                                "smartContentDescriptor": {"musicSeperate": {"method": 1}},
                            }
                        ],
                    },
                )
            idle_id = first["createJobResponse"]["job"]["id"]
            idle = await load(client, idle_id, args.seconds, args.concurrency)
            created = await client.call(
                "CreateJob",
                "createJobRequest",
                {
                    "customId": "bench-run",
                    "inputs": [{"url": clip_url}],
                    "outputs": [
                        {
                            "inputSelectors": [0],
                            "smartContentDescriptor": {"musicSeperate": {"method": 2}},
                        }
                    ],
                },
            )
            job_id = created["createJobResponse"]["job"]["id"]
            while True:  # wait until the worker is past the model load, into the chunks
                job = await client.call("GetJob", "getJobRequest", {"id": job_id})
                if job["getJobResponse"]["job"].get("progress", 0) > 0:
                    break
                await asyncio.sleep(0.2)
            busy = await load(client, job_id, args.seconds, args.concurrency)
            job = await client.call("GetJob", "getJobRequest", {"id": job_id})
            state = job["getJobResponse"]["job"]["state"]
            await wait_final(client, job_id)
            # another song (other bytes: no cache hit), then the same song again (a hit)
            fresh, fresh_url = await serve_clip(encode(
                folder / "other.wav",
                np.sum(list(synth.demo_clip(args.clip_seconds, bpm=100.0).values()), axis=0),
                OutputFormat.WAV))
            try:
                miss, _ = await completion(client, fresh_url)
                hit, cached = await completion(client, fresh_url)
            finally:
                await fresh.cleanup()
            assert all(r.get("fromCache") for r in
                       cached["outputs"][0]["smartContentResult"]["musicSeperate"])
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)
        await clip_server.cleanup()
    idle_rows, busy_rows = summary(idle, args.seconds), summary(busy, args.seconds)
    results = {
        "create_to_completed_s": {"separated": miss, "from_cache": hit},
        "idle": idle_rows,
        "separating": busy_rows,
        "job_state_after": state,
        "listed": args.listed,
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    print(
        table(
            f"Idle server, {args.concurrency} concurrent clients, {args.seconds:g} s,"
            f" ListJobs returning {args.listed} jobs",
            idle_rows,
        )
    )
    print()
    print(
        table(
            f"During a 4-stem separation ({args.clip_seconds:g} s clip, still PROCESSING"
            f" at the end: {state == 2})",
            busy_rows,
        )
    )
    print(f"\nCreateJob to COMPLETED, {args.clip_seconds:g} s song, 4 stems, idle server:"
          f" {miss:.1f} s separated, {hit:.2f} s from the result cache")
    out = Path("benchmarks/out")
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread((out / "service_load.json").write_text, json.dumps(results, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=15, help="load duration per phase")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients")
    parser.add_argument(
        "--listed",
        type=int,
        default=20,
        help="jobs ListJobs returns (finished jobs under one customId)",
    )
    parser.add_argument(
        "--clip-seconds",
        type=float,
        default=60,
        help="length of the clip being separated during the load",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
