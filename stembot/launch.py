"""`stembot up`: the job service and the Discord bot together, in one event loop.

It sits above both: the bot only knows the job API's URL and a key, which this makes for it
through the running service's public methods."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
from pathlib import Path

import discord

from bot.client import StemBot
from bot.settings import BotSettings
from download.addresses import url_endpoint
from service.app import RunningService, start_service
from service.settings import ServiceSettings

log = logging.getLogger("stembot.bot")
KEY_FILE = "bot-key.json"

# View Channels, Send Messages, Attach Files, Read Message History, Create Public Threads,
# Send Messages in Threads.
INVITE_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 15) | (1 << 16) | (1 << 35) | (1 << 38)

INVITE_URL = ("https://discord.com/oauth2/authorize?client_id=<APPLICATION ID>"
              f"&scope=bot+applications.commands&permissions={INVITE_PERMISSIONS}")

NO_TOKEN_HELP = f"""\
Discord bot: not started, because DISCORD_TOKEN is not set. The job API runs without it.
To run the bot as well:
  1. Open https://discord.com/developers/applications, press "New Application", name it.
  2. Bot: press "Reset Token", copy the token, and put it in .env:  DISCORD_TOKEN=<token>
     (no privileged intents are needed: leave Presence, Server Members and Message Content off)
  3. Invite it: OAuth2 -> URL Generator, scopes "bot" and "applications.commands", or open
     {INVITE_URL}
     (the APPLICATION ID is on the app's General Information page)
  4. Register the commands once:  stembot sync --guild <SERVER ID>   (or: stembot sync --global)
  5. Run `stembot up` again, then type /separate in your server."""


def plan(service: ServiceSettings, bot: BotSettings) -> tuple[ServiceSettings, BotSettings]:
    """Let the embedded service call back exactly the bot's listener, and nothing else.

    Allowing every private address instead would let any key holder make the service POST
    to any port of its network (a port scanner); the listener itself checks signatures.
    """
    if not bot.token or bot.api_url or not bot.callbacks:
        return service, bot
    if not bot.public_url and bot.listen_port == 0:
        # The allow-list must name the port the listener will have, so choose it now.
        bot = bot.with_changes(listen_port=_free_port(bot.listen_host))
    host, port = url_endpoint(bot.callback_base)
    allowed = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return service.with_changes(callback_allow=(*service.callback_allow, allowed)), bot


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


class BotKeyError(ValueError):
    """bot-key.json is there but unusable; the message names the file and what to do."""


def bot_key_file(settings: BotSettings) -> Path | None:
    """The key file `stembot up` uses, or None when the bot has its own API and key."""
    return None if settings.api_url or not settings.token else settings.data_dir / KEY_FILE


def read_bot_key(path: Path) -> tuple[str, str] | None:
    """The saved (secretId, secretKey); None without a file. Never guesses past a bad one:
    a new key would leave the old one active, unseen."""
    try:
        saved = json.loads(path.read_bytes())
        secret_id, secret_key = saved["secretId"], saved["secretKey"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        secret_id = secret_key = None
    if not isinstance(secret_id, str) or not isinstance(secret_key, str) or not secret_id:
        raise BotKeyError(
            f"{path} is not a bot key file (JSON with secretId and secretKey): restore it, or"
            " revoke its key (stembot keys list, stembot keys revoke ID) and delete the file;"
            " stembot up then makes a new key")
    return secret_id, secret_key


async def bot_key(service: RunningService, path: Path) -> tuple[str, str]:
    """The bot's credentials for the embedded service: made once, kept in the data folder."""
    saved = await asyncio.to_thread(read_bot_key, path)
    if saved is not None:
        known = await service.key(saved[0])
        if known is not None and known.secret_key == saved[1]:
            return saved
        if known is not None:
            raise BotKeyError(f"{path} holds the wrong secretKey for {saved[0]}: restore it,"
                              f" or revoke {saved[0]} and delete the file")
        log.info("the key in %s is revoked or unknown here: making a new one", path)
    key = await service.create_key("discord bot (stembot up)")
    await asyncio.to_thread(_write_private, path, json.dumps(
        {"secretId": key.secret_id, "secretKey": key.secret_key}))
    return key.secret_id, key.secret_key


async def _repository(service: RunningService, secret_id: str) -> str:
    """The key's default repository, where the bot uploads the inputs it checked."""
    key = await service.key(secret_id)
    assert key is not None, "bot_key returns an active key"
    return key.default_content


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)


def _client_url(url: str) -> str:
    """The service URL a local client uses (a wildcard bind address is not one to connect to)."""
    for wildcard in ("0.0.0.0", "[::]"):
        url = url.replace(f"//{wildcard}:", "//127.0.0.1:")
    return url


async def run_up(service: ServiceSettings, bot: BotSettings) -> None:
    """Serve the job API, with the bot beside it when there is a token; stop on SIGTERM."""
    stop = asyncio.Event()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    if not bot.token:
        print(NO_TOKEN_HELP, flush=True)
    service, bot = plan(service, bot)
    running = await start_service(service)
    log.info("job service listening on %s", running.url)
    try:
        if bot.token:
            await _run_bot(running, bot, stop)
        await stop.wait()
    finally:
        await running.stop()


async def _run_bot(running: RunningService, settings: BotSettings, stop: asyncio.Event) -> None:
    """Run the bot until `stop`; if Discord refuses it, say why and leave the API serving."""
    if settings.api_url and not (settings.secret_id and settings.secret_key
                                 and settings.content_id):
        print(f"Discord bot: not started: BOT_API_URL is {settings.api_url}; set BOT_SECRET_ID,"
              " BOT_SECRET_KEY and BOT_CONTENT_ID to the key that service issued you (the"
              " secretId, secretKey and contentId `stembot keys create` printed).", flush=True)
        return
    if not settings.api_url:
        secret_id, secret_key = await bot_key(running, settings.data_dir / KEY_FILE)
        settings = settings.with_changes(api_url=_client_url(running.url) + "/release/job",
                                         secret_id=secret_id, secret_key=secret_key,
                                         content_id=await _repository(running, secret_id))
    log.info("the bot submits jobs to %s", settings.api_url)
    async with StemBot(settings) as client:
        task = asyncio.create_task(client.start(settings.token))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if task.done() and task.exception() is not None:
            print(f"Discord bot stopped: {_explain(task.exception())}; the job API keeps"
                  " running.", flush=True)
            return
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _explain(error: BaseException | None) -> str:
    if isinstance(error, discord.LoginFailure):
        return ("Discord refused DISCORD_TOKEN; copy it again from the Developer Portal"
                " (Bot -> Reset Token)")
    if isinstance(error, discord.PrivilegedIntentsRequired):
        return "Discord asks for privileged intents, which this bot does not use"
    return f"{type(error).__name__}: {error}"
