"""One bot, many servers (not a test): /separate from many members of many servers at once.

Runs the real `stembot up` (job service and bot in one process, SQLite, its own worker
processes) in a subprocess whose discord.py talks to the project's fake Discord
(support/fake_discord.py) in this process. M members in S servers send /separate within W
seconds, one server sending B of them, each a different short rendered song (so that every job
is a real separation, never a result-cache hit). Measured:

- acknowledgement latency (INTERACTION_CREATE to the interaction's callback), p50/p99;
- exactly once: every job's thread holds each stem file once (none missing, none twice);
- per server, the time until its first delivery (the first stem message in a thread);
- GetJob p50/p99 meanwhile (4 clients with the bot's key, over its jobs);
- peak memory (VmHWM) of the `stembot up` process and of its worker processes.

    .venv/bin/python -m benchmarks.discord_fair_share --members 50 --servers 10 --big 25

The bot's per-server cap is off here (BOT_MAX_SERVER_JOBS=0): the big server's 25 songs all
enter the queue, which is what fair share is to be measured against.

`--postgres N` runs the same on the several-machines set-up: a throwaway PostgreSQL and
SeaweedFS, `stembot up` as API + bot only, and N `stembot worker` nodes; `--kill-after D`
kills one worker node (SIGKILL to its whole process group, as a lost machine) once D jobs
are delivered. Its jobs come back when their leases run out; still exactly once:

    .venv/bin/python -m benchmarks.discord_fair_share --postgres 2 --kill-after 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from benchmarks.service_load import free_port
from separation import OutputFormat, encode, synth
from stembot.launch import read_bot_key
from support.fake_discord import GUILD_ID, FakeDiscord, InteractionLog
from support.postgres import PostgresCluster
from support.seaweed import SeaweedFS

BUCKET = "fair"

# `stembot up`, its discord.py pointed at the fake (as FakeDiscord.installed does in-process)
LAUNCH = """
import os, sys, discord, yarl
base = os.environ["FAKE_DISCORD"]
discord.http.Route.BASE = base + "/api/v10"
discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(base.replace("http", "ws", 1)
                                                            + "/gateway")
from stembot.cli import main
sys.exit(main(["up"]))
"""


def start_up(env: dict[str, str], log: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", LAUNCH], env=env, stdout=log,
                            stderr=subprocess.STDOUT)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def songs(folder: Path, count: int, seconds: float) -> list[bytes]:
    """`count` different renderings (a gain apart): no two share a result-cache entry."""
    mix = np.sum(list(synth.demo_clip(seconds).values()), axis=0)
    out = []
    for n in range(count):
        path = encode(folder / f"song-{n}.wav", mix * (0.5 + n / (4 * count)), OutputFormat.WAV)
        out.append(path.read_bytes())
    return out


def hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                children = [int(c) for c in (task / "children").read_text().split()]
                found += children
                stack += children
    return found


async def get_job_load(url: str, key: tuple[str, str], stop: asyncio.Event,
                       latencies: list[float]) -> None:
    """4 clients polling GetJob over the bot's jobs (listed once a second) until `stop`."""
    auth = {"secretId": key[0], "secretKey": key[1]}
    ids: list[str] = []
    async with aiohttp.ClientSession() as session:
        async def call(action: str, request: dict[str, Any]) -> dict[str, Any]:
            body = {"action": action, **auth, action[0].lower() + action[1:] + "Request": request}
            async with session.post(url + "/release/job", json=body) as answer:
                data: dict[str, Any] = await answer.json()
                return data

        async def lister() -> None:
            while not stop.is_set():
                listed = await call("ListJobs", {"limit": 1000})
                ids[:] = [j["id"] for j in listed["listJobsResponse"]["jobs"]]
                await asyncio.sleep(1)

        async def poller() -> None:
            while not stop.is_set():
                if not ids:
                    await asyncio.sleep(0.1)
                    continue
                started = time.perf_counter()
                await call("GetJob", {"id": random.choice(ids)})
                latencies.append(time.perf_counter() - started)
                await asyncio.sleep(0.05)

        await asyncio.gather(lister(), *(poller() for _ in range(4)))


class Nodes:
    """Where `stembot up` keeps its jobs: its own folder and SQLite, or (`--postgres N`) a
    throwaway PostgreSQL and SeaweedFS shared with N worker nodes."""

    def __init__(self, folder: Path, worker_nodes: int) -> None:
        self.folder = folder
        self.worker_nodes = worker_nodes
        self.workers: list[subprocess.Popen[bytes]] = []
        self.postgres: PostgresCluster | None = None
        self.seaweed: SeaweedFS | None = None

    def start_shared(self) -> dict[str, str]:
        """Start the database and object store every node shares (none on SQLite); the
        settings that point the nodes at them."""
        if not self.worker_nodes:
            return {}
        self.postgres = PostgresCluster().init().start()
        self.seaweed = SeaweedFS(self.folder / "seaweed")
        self.seaweed.start()
        self.seaweed.create_bucket(BUCKET)
        return {"STEMBOT_DATABASE_URL": self.postgres.create_database(),
                **self.seaweed.env(f"s3://{BUCKET}/jobs"), "STEMBOT_MIN_FREE_BYTES": "0"}

    def start_workers(self, env: dict[str, str]) -> None:
        for n in range(self.worker_nodes):
            node = {**env, "STEMBOT_DATA_DIR": str(self.folder / f"w{n + 1}"),
                    "STEMBOT_NODE_NAME": f"w{n + 1}", "STEMBOT_WORKERS": "1"}
            with (self.folder / f"w{n + 1}.log").open("wb") as log:
                self.workers.append(subprocess.Popen(
                    [sys.executable, "-m", "stembot", "worker"], env=node, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True))

    def kill_one(self) -> None:
        """A lost machine: the first worker node and its worker processes, SIGKILL."""
        os.killpg(self.workers[0].pid, signal.SIGKILL)

    def reclaimed(self) -> int:
        """Claims of a job's second or later attempt, from the worker nodes' logs."""
        lines = [line for n in range(self.worker_nodes)
                 for line in (self.folder / f"w{n + 1}.log").read_text().splitlines()
                 if ": claimed by " in line and " attempt " in line]
        return sum(int(line.split(" attempt ", 1)[1].split(":", 1)[0]) > 1 for line in lines)

    def close(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
        if self.seaweed is not None:
            self.seaweed.stop()
        if self.postgres is not None:
            self.postgres.remove()


def up_env(fake: FakeDiscord, folder: Path, port: int, workers: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BOT_", "STEMBOT_", "DISCORD_"))}
    return env | {"FAKE_DISCORD": fake.base, "DISCORD_TOKEN": "fake-token",
                  "STEMBOT_DATA_DIR": str(folder / "data"), "STEMBOT_PORT": str(port),
                  "STEMBOT_WORKERS": str(workers), "BOT_LISTEN_PORT": "0",
                  "BOT_ALLOW_PRIVATE_NETWORKS": "true", "BOT_COOLDOWN_SECONDS": "0",
                  "BOT_MAX_CONCURRENT": "0", "BOT_DAILY_QUOTA": "0", "BOT_MAX_SERVER_JOBS": "0",
                  "STEMBOT_ALLOW_PRIVATE_NETWORKS": "true",
                  "STEMBOT_LINK_SECRET": "benchmark-link-secret-0123456789abcdef"}


async def bot_key(folder: Path) -> tuple[str, str]:
    for _ in range(600):
        key = read_bot_key(folder / "data" / "bot-key.json")
        if key:
            return key
        await asyncio.sleep(0.1)
    raise RuntimeError("the bot made no key")


async def run(args: argparse.Namespace) -> None:
    random.seed(1)
    with tempfile.TemporaryDirectory(prefix="stembot-fair-") as tmp:
        folder = Path(tmp)
        os.chmod(folder, 0o755)  # PostgreSQL's own user reads below it
        data = songs(folder, args.members, args.seconds)
        nodes = Nodes(folder, args.postgres)
        try:
            async with FakeDiscord() as fake:
                await run_up(args, fake, folder, data, nodes)
        finally:
            nodes.close()  # also when a shared server failed to start


async def run_up(args: argparse.Namespace, fake: FakeDiscord, folder: Path, data: list[bytes],
                 nodes: Nodes) -> None:
    """`stembot up` (and the worker nodes) against the fake, then the measured run."""
    urls = [fake.serve(f"song-{n}.wav", d, "audio/wav") for n, d in enumerate(data)]
    port = free_port()
    shared = nodes.start_shared()
    env = up_env(fake, folder, port, 0 if args.postgres else args.workers) | shared
    log = (folder / "up.log").open("wb")
    up = start_up(env, log)
    try:
        await asyncio.wait_for(fake.ready(), 120)
        nodes.start_workers({**up_env(fake, folder, port, 1), **shared})
        key = await bot_key(folder)
        await report(args, fake, urls, f"http://127.0.0.1:{port}", key, up.pid, nodes)
    finally:
        up.terminate()
        try:
            up.wait(30)
        except subprocess.TimeoutExpired:
            up.kill()
        log.close()


async def report(args: argparse.Namespace, fake: FakeDiscord, urls: list[str], url: str,
                 key: tuple[str, str], pid: int, nodes: Nodes) -> None:
    servers = [GUILD_ID + n for n in range(args.servers)]
    # the big server sends B; the others share the rest, round robin
    who = [servers[0]] * args.big + [servers[1 + n % (args.servers - 1)]
                                     for n in range(args.members - args.big)]
    offsets = sorted(random.uniform(0, args.window) for _ in who)
    random.shuffle(who)
    stop = asyncio.Event()
    getjob: list[float] = []
    load = asyncio.create_task(get_job_load(url, key, stop, getjob))
    peaks = {"up": 0, "workers": 0}

    async def sample() -> None:
        while not stop.is_set():
            peaks["up"] = max(peaks["up"], hwm_kib(pid))
            workers = [w for node in nodes.workers for w in [node.pid, *descendants(node.pid)]]
            peaks["workers"] = max([peaks["workers"],
                                    *map(hwm_kib, [*descendants(pid), *workers])])
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample())
    start = time.monotonic()
    sent: list[tuple[int, float, InteractionLog]] = []
    acks: list[float] = []

    async def send(n: int) -> None:
        await asyncio.sleep(max(0.0, start + offsets[n] - time.monotonic()))
        at = time.monotonic()
        interaction = await fake.interact("separate", [
            {"name": "stems", "type": 4, "value": 2},
            {"name": "url", "type": 3, "value": urls[n]}],
            user_id=900_000_000_000_100_000 + n, guild_id=who[n])
        sent.append((who[n], at, interaction))
        await fake.wait_until(lambda: interaction.callback is not None, seconds=60)
        acks.append(time.monotonic() - at)

    await asyncio.gather(*(send(n) for n in range(len(who))))
    delivered: dict[int, float] = {}  # per job (its thread): seconds from the start to stems

    def ended(interaction: InteractionLog) -> bool:
        text = interaction.original.content if interaction.original else ""
        return any(word in text for word in ("✅ done", "❌ failed", "🚫 canceled"))

    deadline = time.monotonic() + args.timeout
    killed_at = None
    while time.monotonic() < deadline:
        for _guild, _at, interaction in sent:
            thread = interaction.original.id if interaction.original else 0
            if thread and thread not in delivered and any(
                    m.attachments for m in fake.in_channel(thread)):
                delivered[thread] = time.monotonic() - start
        if args.kill_after and killed_at is None and len(delivered) >= args.kill_after:
            nodes.kill_one()
            killed_at = time.monotonic() - start
        if all(ended(i) for _, _, i in sent):
            break
        await asyncio.sleep(0.2)
    stop.set()
    await asyncio.gather(load, sampler, return_exceptions=True)

    missing = duplicated = failed = 0
    for _guild, _at, interaction in sent:
        if interaction.original is None or "✅ done" not in interaction.original.content:
            failed += 1
        names = [a.filename for m in fake.in_channel(interaction.original.id)
                 for a in m.attachments] if interaction.original else []
        missing += not names
        duplicated += len(names) - len(set(names))
    times: dict[int, list[float]] = {s: [] for s in servers}
    for guild, _at, interaction in sent:
        if interaction.original is not None and interaction.original.id in delivered:
            times[guild].append(delivered[interaction.original.id])
    big_times = sorted(times[servers[0]])
    big = big_times[0] if big_times else float("nan")
    small = [min(times[s], default=float("nan")) for s in servers[1:]]
    # how many of the big server's jobs were delivered before a small server's first
    before = [sum(1 for t in big_times if t < first) for first in small]
    layout = (f"PostgreSQL + S3, {args.postgres} worker node(s) of 1 worker" if args.postgres
              else f"SQLite, {args.workers} worker(s)")
    print(f"\n{args.members} members in {args.servers} servers (one sends {args.big}),"
          f" {args.seconds:g} s songs within {args.window:g} s; {layout}")
    if killed_at is not None:
        print(f"worker node w1 killed (SIGKILL) at {killed_at:.0f} s, after"
              f" {args.kill_after} deliveries; jobs claimed again: {nodes.reclaimed()}")
    print("| measure | value |\n|---|---|")
    print(f"| acknowledgement p50 / p99 | {pct(acks, .5) * 1000:.0f} ms /"
          f" {pct(acks, .99) * 1000:.0f} ms |")
    print(f"| jobs done / failed | {len(sent) - failed} / {failed} |")
    print(f"| jobs without stems / stem files posted twice | {missing} / {duplicated} |")
    print(f"| first delivery, big server | {big:.1f} s |")
    print(f"| first delivery, small servers (median / latest) |"
          f" {statistics.median(small):.1f} s / {max(small):.1f} s |")
    print(f"| big server's jobs delivered before a small server's first (median / most) |"
          f" {statistics.median(before):.0f} / {max(before)} of {len(big_times)} |")
    print(f"| GetJob p50 / p99 (4 clients, {len(getjob)} calls) | {pct(getjob, .5) * 1000:.1f}"
          f" ms / {pct(getjob, .99) * 1000:.1f} ms |")
    print(f"| peak memory: stembot up (service + bot) / a worker process |"
          f" {peaks['up'] / 1024:.0f} MiB / {peaks['workers'] / 1024:.0f} MiB |")
    print(f"| wall time | {time.monotonic() - start:.0f} s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--servers", type=int, default=10)
    parser.add_argument("--big", type=int, default=25, help="songs the one big server sends")
    parser.add_argument("--window", type=float, default=10, help="seconds they arrive within")
    parser.add_argument("--seconds", type=float, default=3, help="length of each song")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--postgres", type=int, default=0, metavar="N",
                        help="PostgreSQL + S3 with N worker nodes (0: SQLite, local workers)")
    parser.add_argument("--kill-after", type=int, default=0, metavar="D",
                        help="with --postgres, SIGKILL one worker node after D deliveries")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
