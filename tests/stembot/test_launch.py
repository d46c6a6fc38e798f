"""`stembot up`: the job service alone without a token, the bot beside it with one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from bot.settings import BotSettings
from service.settings import ServiceSettings
from service.store_sql import SqlStore
from stembot.launch import BotKeyError, run_up
from support.discord_bot import TEST_LIMITS, read_bytes
from support.fake_discord import FakeDiscord

MEMBER = 900_000_000_000_000_104


@contextlib.asynccontextmanager
async def background(coro: Coroutine[Any, Any, None]) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(coro)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def service_url(caplog: pytest.LogCaptureFixture) -> str:
    for _ in range(100):
        for record in caplog.records:
            if record.getMessage().startswith("job service listening on "):
                return record.getMessage().rsplit(" ", 1)[-1]
        await asyncio.sleep(0.05)
    raise AssertionError("the job service did not start")


async def test_without_a_token_it_explains_and_serves_the_api(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "stembot.bot")
    service = ServiceSettings(port=0, data_dir=tmp_path / "data")
    bot = BotSettings(token="", data_dir=tmp_path / "data")
    async with background(run_up(service, bot)):
        url = await service_url(caplog)
        async with aiohttp.ClientSession() as session, session.get(url + "/healthz") as answer:
            assert answer.status == 200
    printed = capsys.readouterr().out
    assert "DISCORD_TOKEN is not set" in printed
    assert "New Application" in printed and "stembot sync --guild" in printed
    assert "scope=bot+applications.commands&permissions=309237746688" in printed


async def test_with_a_token_the_bot_uses_the_embedded_service(
    fake: FakeDiscord, tmp_path: Path, demo_wav: Path
) -> None:
    song = fake.serve("demo.wav", read_bytes(demo_wav), "audio/wav")
    service = ServiceSettings(port=0, data_dir=tmp_path / "data", allow_private_networks=True)
    bot = BotSettings(token="fake-token", listen_port=0, data_dir=tmp_path / "data",
                      limits=TEST_LIMITS, allow_private_networks=True)
    async with background(run_up(service, bot)):
        await fake.ready()
        log = await fake.interact("separate", [
            {"name": "url", "type": 3, "value": song}, {"name": "stems", "type": 4, "value": 2},
        ], user_id=MEMBER)
        # Queued: the embedded service took the job, with its loopback callback URL.
        await fake.wait_until(lambda: log.original is not None
                              and "queued" in log.original.content, seconds=30)
        key_file = tmp_path / "data" / "bot-key.json"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        cancel = await fake.interact("job", [{"name": "cancel", "type": 1, "options": [
            {"name": "id", "type": 4, "value": 1}]}], user_id=MEMBER)
        await fake.wait_until(lambda: bool(cancel.followups), seconds=10)
        assert cancel.followups == ["job #1 canceled."]


CORRUPT_KEY_FILES = [b"{not json", b'{"secretId": 5, "secretKey": "k"}', b"[]", b"\xff\xfe"]


@pytest.mark.parametrize("content", CORRUPT_KEY_FILES)
async def test_a_corrupt_bot_key_file_is_refused_not_replaced(
    tmp_path: Path, content: bytes
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "bot-key.json").write_bytes(content)
    service = ServiceSettings(port=0, data_dir=data)
    bot = BotSettings(token="fake-token", listen_port=0, data_dir=data)
    with pytest.raises(BotKeyError, match="bot-key.json"):
        await asyncio.wait_for(run_up(service, bot), 15)
    assert (data / "bot-key.json").read_bytes() == content
    store = await SqlStore.open(data / "service.sqlite3")
    try:
        assert await store.keys() == []  # no second key was minted beside the lost one
    finally:
        await store.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_stembot_up_says_so_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "bot-key.json").write_bytes(b"{not json")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("BOT_", "STEMBOT_", "DISCORD_"))}
    env |= {"DISCORD_TOKEN": "fake-token", "STEMBOT_DATA_DIR": str(tmp_path),
            "STEMBOT_PORT": str(free_port()), "BOT_LISTEN_PORT": "0"}
    done = subprocess.run([sys.executable, "-m", "stembot", "up"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1, done
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert str(tmp_path / "bot-key.json") in lines[0] and "delete" in lines[0]
    assert "stembot job service" not in done.stdout  # refused before the banner


async def call(url: str, key: dict[str, str], action: str, request: dict[str, Any]
               ) -> tuple[int, dict[str, Any]]:
    body = {"action": action, **key, action[0].lower() + action[1:] + "Request": request}
    async with aiohttp.ClientSession() as session, session.post(url + "/release/job",
                                                                 json=body) as answer:
        return answer.status, await answer.json()


async def test_callbacks_reach_exactly_the_bots_listener(
    fake: FakeDiscord, tmp_path: Path, demo_wav: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`stembot up` allows the bot's own listener, not every loopback port (a port scanner)."""
    caplog.set_level(logging.INFO, "stembot.bot")
    song = fake.serve("demo.wav", read_bytes(demo_wav), "audio/wav")
    service = ServiceSettings(port=0, data_dir=tmp_path / "data", allow_private_networks=True)
    bot = BotSettings(token="fake-token", listen_port=0, data_dir=tmp_path / "data",
                      limits=TEST_LIMITS, allow_private_networks=True)
    async with background(run_up(service, bot)):
        url = await service_url(caplog)
        await fake.ready()
        log = await fake.interact("separate", [
            {"name": "url", "type": 3, "value": song}, {"name": "stems", "type": 4, "value": 2},
        ], user_id=MEMBER)
        await fake.wait_until(lambda: log.original is not None
                              and "queued" in log.original.content, seconds=30)
        key = json.loads((tmp_path / "data" / "bot-key.json").read_text())
        status, listed = await call(url, key, "ListJobs", {"customId": "stembot-discord-1"})
        job = listed["listJobsResponse"]["jobs"][0]
        listener = urlsplit(job["callback"])
        # another loopback port, even the service's own, is refused at CreateJob
        for hook in (f"http://127.0.0.1:{free_port()}/hook", f"{url}/release/job",
                     f"http://localhost:{listener.port}/x"):
            status, body = await call(url, key, "CreateJob", {
                "callback": hook, "inputs": [{"url": song}], "outputs": [{
                    "inputSelectors": [0],
                    "smartContentDescriptor": {"musicSeperate": {"method": 1}}}]})
            assert (status, body["error"]["code"]) == (400, "URL_NOT_ALLOWED"), (hook, body)
        # while the bot's own listener gets its callback
        cancel = await fake.interact("job", [{"name": "cancel", "type": 1, "options": [
            {"name": "id", "type": 4, "value": 1}]}], user_id=MEMBER)
        await fake.wait_until(lambda: bool(cancel.followups), seconds=10)
        async with asyncio.timeout(20):
            while True:
                status, got = await call(url, key, "GetJob", {"id": job["id"]})
                if got["getJobResponse"]["job"]["callbackStatus"]["state"] == "DELIVERED":
                    break
                await asyncio.sleep(0.1)  # polling the API, as a client does


async def test_another_service_needs_the_keys_repository(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The bot uploads what it checked to its key's repository, so it must know which."""
    caplog.set_level(logging.INFO, "stembot.bot")
    service = ServiceSettings(port=0, data_dir=tmp_path / "data")
    bot = BotSettings(token="fake-token", api_url="https://stems.example.org/release/job",
                      secret_id="AKID1", secret_key="secret", data_dir=tmp_path / "data")
    async with background(run_up(service, bot)):
        # The check runs right after the service logs that it listens, before any await.
        await service_url(caplog)
        printed = capsys.readouterr().out
    assert "set BOT_SECRET_ID, BOT_SECRET_KEY and BOT_CONTENT_ID" in printed
    assert "contentId `stembot keys create` printed" in printed
