"""Kill -9 the real `stembot serve` in the middle of a job, start it again: nothing is lost."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
import yarl
from service_harness import Api, Origin, make_settings
from test_service_jobs import signed

from service.app import start_service
from service.errors import StartupError
from service.store import NewKey


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return os.environ | {
        "STEMBOT_DATA_DIR": str(tmp_path / "data"), "STEMBOT_ALLOW_PRIVATE_NETWORKS": "true",
        "STEMBOT_CALLBACK_BACKOFF": "0.2", "STEMBOT_PORT": str(free_port()),
        "STEMBOT_WORKERS": "1",  # the restart scenarios queue a job behind a running one
    }


def stembot(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "stembot", *args], env=env, check=True,
                          capture_output=True, text=True, timeout=60)
    return done.stdout


def start(command: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "stembot", command], env=env,
                                stdout=out, stderr=out, start_new_session=True)


async def serve(env: dict[str, str], log: Path, servers: list[subprocess.Popen[bytes]],
                command: str = "serve") -> str:
    """Start `stembot <command>` in its own session; return its URL once it answers."""
    servers.append(await asyncio.to_thread(start, command, env, log))
    url = f"http://127.0.0.1:{env['STEMBOT_PORT']}"
    async with aiohttp.ClientSession() as client, asyncio.timeout(30):
        while True:
            try:
                async with client.get(url + "/healthz") as response:
                    if response.status == 200:
                        return url
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)


def children(pid: int) -> set[int]:
    """Live processes whose parent is `pid` (the server's pool workers)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def is_pool_worker(pid: int) -> bool:
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


async def pool_workers(pid: int, within: float = 60) -> set[int]:
    """Poll /proc until `pid` has a spawned pool worker (no event to wait on); its children."""
    for _ in range(int(within * 10)):
        found = children(pid)
        if any(map(is_pool_worker, found)):
            return found
        await asyncio.sleep(0.1)
    return set()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def all_gone(pids: set[int], within: float = 10) -> bool:
    """Poll /proc until every pid has exited (there is no event to wait on for that)."""
    for _ in range(int(within * 10)):
        if not any(map(alive, pids)):
            return True
        await asyncio.sleep(0.1)
    return False


def state_in_db(env: dict[str, str], job_id: str) -> int:
    path = Path(env["STEMBOT_DATA_DIR"]) / "service.sqlite3"
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT state FROM jobs WHERE id=?", (job_id,)).fetchone()
    return int(row[0])


async def test_restart_in_the_middle_of_a_job(
    env: dict[str, str], origin: Origin, tmp_path: Path,
    servers: list[subprocess.Popen[bytes]],
) -> None:
    created = json.loads(stembot(env, "keys", "create", "--name", "restart"))
    key = NewKey(created["secretId"], created["secretKey"], created["contentId"])
    log = tmp_path / "server.log"
    url = await serve(env, log, servers)
    hook = origin.url + "/callback"
    async with aiohttp.ClientSession() as client:
        api = Api(client, url, key)
        running = await api.create([{"url": origin.url + "/files/clip.wav"}], callback=hook,
                                   customId="restart")
        queued = await api.create([{"url": origin.url + "/files/clip.wav"}], method=3,
                                  callback=hook, customId="restart")
        await api.wait(running["id"], states=(2,))
        # the second job's input is fetched ahead while the first one separates
        await api.wait(queued["id"], states=(2,))
        # into the worker: a pool process exists once a separation was handed to it
        workers = await pool_workers(servers[0].pid)
        assert workers, "the server runs separations in worker processes"
        os.kill(servers[0].pid, signal.SIGKILL)
        servers[0].wait()
        # killed with the server, not left holding a loaded model
        assert await all_gone(workers)
        assert state_in_db(env, running["id"]) == 2
        assert state_in_db(env, queued["id"]) == 2
        assert not origin.callbacks

        await serve(env, log, servers)
        done = await api.wait(running["id"], within=120)
        assert done["state"] == 3, done
        assert len(done["outputs"][0]["smartContentResult"]["musicSeperate"]) == 2
        five = await api.wait(queued["id"], within=120)
        assert five["state"] == 3, five
        results = five["outputs"][0]["smartContentResult"]["musicSeperate"]
        assert sorted(r["tone"] for r in results) == [1, 2, 3, 4, 5]  # 4: PIANO
        for job_id in (running["id"], queued["id"]):
            body, headers = await origin.wait_callback(job_id)
            assert signed(body, headers, key.secret_key)
        listed = await api.ok("ListJobs", {"customId": "restart"})
        assert [j["state"] for j in listed["jobs"]] == [3, 3]

    # a clean stop on SIGINT (Ctrl-C)
    servers[1].send_signal(signal.SIGINT)
    assert await asyncio.to_thread(servers[1].wait, 30) in (0, 130)
    assert key.secret_key not in log.read_text()


async def test_up_serves_and_stops_on_sigterm(
    env: dict[str, str], tmp_path: Path, servers: list[subprocess.Popen[bytes]],
) -> None:
    log = tmp_path / "up.log"
    url = await serve(env, log, servers, "up")
    async with aiohttp.ClientSession() as client, client.get(url + "/openapi.json") as response:
        assert response.status == 200
    servers[0].send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(servers[0].wait, 30) == 0
    assert "stembot keys create" in log.read_text()


async def test_the_log_escapes_what_a_request_puts_in_it(
    env: dict[str, str], tmp_path: Path, servers: list[subprocess.Popen[bytes]],
) -> None:
    """A newline in a path cannot start a genuine-looking log line of its own."""
    log = tmp_path / "serve.log"
    url = await serve(env, log, servers)
    forged = "1999-12-31 23:59:59,000 stembot.service FORGED"
    path = "/x%0a" + quote(forged) + "%0d%1b[31m"
    async with aiohttp.ClientSession() as client, client.get(
            yarl.URL(url + path, encoded=True)) as response:
        assert response.status == 404
    servers[0].send_signal(signal.SIGTERM)  # the log is complete once the server is gone
    assert await asyncio.to_thread(servers[0].wait, 30) == 0
    lines = log.read_text().splitlines()
    assert not [line for line in lines if line.startswith("1999-12-31")], lines
    access = [line for line in lines if "FORGED" in line]
    assert len(access) == 1 and f"/x\\n{forged}\\r\\x1b[31m 404" in access[0], access


@pytest.mark.parametrize("command", ["serve", "up"])
def test_without_the_model_the_service_does_not_start(
    env: dict[str, str], tmp_path: Path, command: str,
) -> None:
    """One clear line and status 1, not a pool of workers that die at every job."""
    models = tmp_path / "no-models"
    models.mkdir()
    done = subprocess.run([sys.executable, "-m", "stembot", command],
                          env=env | {"STEMBOT_MODEL_DIR": str(models), "DISCORD_TOKEN": ""},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"the 4-stem model is not installed in {models}: run `stembot models fetch`"]


async def test_start_service_refuses_a_folder_without_the_model(tmp_path: Path) -> None:
    models = tmp_path / "no-models"
    models.mkdir()
    with pytest.raises(StartupError, match=r"4-stem model is not installed in .*stembot models"):
        await start_service(make_settings(tmp_path / "data", model_dir=models))
