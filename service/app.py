"""The aiohttp application, and start/stop functions to run it inside any event loop."""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from separation import model_files
from separation.errors import ModelNotInstalledError
from service.auth import link_secret
from service.blobs import open_blobs
from service.callbacks import Callbacks, callback_limits
from service.content import ContentStore
from service.errors import StartupError
from service.jobs import JobRunner
from service.midi import MidiMaker
from service.mixes import Mixer
from service.origins import split_origins
from service.pages import page_routes
from service.player import player_routes
from service.player_mixes import PlayerMixes
from service.quota import StorageQuota
from service.routes import MAX_JSON_BODY, errors, routes
from service.session import session_routes
from service.settings import ServiceSettings
from service.state import SERVICE, Service
from service.store import Key, NewKey, SchemaError, Store, open_store
from service.vendor import vendor_routes

log = logging.getLogger("stembot.service")


class MalformedRequests(logging.Filter):
    """aiohttp's record of a request it could not parse (a request line or header over 8,190
    bytes, a bad header) quotes the request, link signature and all: one line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            record.msg, record.args = "refused a malformed request: %s (HTTP %d)", (
                type(error).__name__, error.code)
            record.exc_info, record.exc_text = None, None
        return True


_MALFORMED = MalformedRequests()


class AccessLogger(AbstractAccessLogger):
    """Method, path and status only: query strings (link signatures) stay out of logs."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info("%s %s %s %.1fms", request.method, request.path, response.status,
                         time * 1000)


def check_models(settings: ServiceSettings) -> None:
    """Refuse to start without the 4-stem model, which every worker loads as it starts.

    Without it each worker would die at start, failing every job with WORKER_CRASHED. An
    API-only node (no workers) needs no model.
    """
    if settings.workers == 0:
        return
    try:
        model_files.htdemucs_parts(settings.models)
        model_files.verified_path(model_files.HTDEMUCS, settings.models)
    except ModelNotInstalledError as error:
        raise StartupError(str(error)) from None


async def open_service(settings: ServiceSettings) -> Service:
    """Check the model, open the store, start the runner, the sweeper and pending callbacks."""
    await asyncio.to_thread(check_models, settings)
    await asyncio.to_thread(settings.data_dir.mkdir, parents=True, exist_ok=True)
    try:
        store = await open_store(settings)
    except (ConnectionError, SchemaError) as error:
        raise StartupError(str(error)) from None
    blobs = open_blobs(settings)
    content = ContentStore(blobs, store, settings.max_bytes, settings.scratch_dir)
    try:
        await content.prepare()
    except BaseException:
        await store.close()
        raise
    callbacks = Callbacks(settings, store)
    quota = StorageQuota(blobs, store, settings.max_stored_bytes)
    runner = JobRunner(settings, store, content, callbacks, quota)
    secret = await shared_link_secret(settings, store)
    document = await asyncio.to_thread(
        resources.files("service").joinpath("openapi.json").read_text)
    service = Service(settings, store, content, callbacks, runner, quota,
                      settings.input_limits, callback_limits(settings), secret, document,
                      Mixer(store, content, quota),
                      PlayerMixes(settings.player_mix_dir, settings.player_mix_cache),
                      MidiMaker(store, content, quota, runner.workers))
    await callbacks.start()
    await runner.start()
    return service


async def shared_link_secret(settings: ServiceSettings, store: Store) -> bytes:
    """STEMBOT_LINK_SECRET; else on a shared database one kept in it, so that a link minted by
    one API node works on every node; else the data folder's file (one box)."""
    if not settings.link_secret and store.shared:
        return (await store.meta_default("link_secret", secrets.token_hex(32))).encode()
    return await asyncio.to_thread(link_secret, settings.data_dir, settings.link_secret)


async def close_service(service: Service) -> None:
    await service.runner.close()
    await service.callbacks.close()
    await service.store.close()


def make_app(settings: ServiceSettings) -> web.Application:
    app = web.Application(middlewares=[errors, split_origins], client_max_size=MAX_JSON_BODY)
    app.add_routes(routes)
    app.add_routes(player_routes)
    app.add_routes(session_routes)
    app.add_routes(page_routes)
    app.add_routes(vendor_routes)

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        app[SERVICE] = await open_service(settings)
        yield
        await close_service(app[SERVICE])

    app.cleanup_ctx.append(lifetime)
    return app


@dataclass(slots=True)
class RunningService:
    """A started service; `stop()` shuts it down, leaving open jobs for the next start.

    `key` and `create_key` let a client in the same process (`stembot up`'s bot) get a key
    of this service without reaching into its parts."""

    runner: web.AppRunner
    url: str

    async def key(self, secret_id: str) -> Key | None:
        """The active (not revoked) key with this secretId, or None."""
        return await self.runner.app[SERVICE].store.key(secret_id)

    async def create_key(self, name: str) -> NewKey:
        """A new key with its default repository, as `stembot keys create` makes one."""
        return await self.runner.app[SERVICE].store.create_key(name)

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_service(settings: ServiceSettings) -> RunningService:
    """Start listening on settings.host:port (port 0 picks a free one) in this event loop."""
    # aiohttp closes a connection that has no complete request after keepalive_timeout,
    # from its start too: a client that does not send its headers in time is cut off.
    logging.getLogger("aiohttp.server").addFilter(_MALFORMED)  # once: a set of filters
    # auto_decompress off: service/bodies.py decodes, and refuses a body that does not decode
    # whole (aiohttp's own decoding let one through as an empty file)
    runner = web.AppRunner(make_app(settings), access_log_class=AccessLogger,
                           keepalive_timeout=settings.header_timeout, auto_decompress=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    host, port = runner.addresses[0][:2]
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    runner.app[SERVICE].base_url = settings.public_url.rstrip("/") or url
    return RunningService(runner, url)


async def run_service(settings: ServiceSettings, stop: asyncio.Event | None = None) -> None:
    """Run until `stop` is set or the task is cancelled (Ctrl-C), then shut down cleanly."""
    service = await start_service(settings)
    log.info("job service listening on %s", service.url)
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        await service.stop()


async def run_until_signal(settings: ServiceSettings) -> None:
    """`run_service` that also stops on SIGTERM (systemd, docker stop), for the CLI."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await run_service(settings, stop)


async def run_worker(settings: ServiceSettings, stop: asyncio.Event) -> None:
    """A separation node: the runner, sweeper and callbacks on the shared store, no HTTP API;
    on `stop` its running jobs go back to the queue at once."""
    service = await open_service(settings)
    log.info("worker node %s: %d workers", settings.node, settings.workers)
    try:
        await stop.wait()
    finally:
        await close_service(service)


async def run_worker_until_signal(settings: ServiceSettings) -> None:
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await run_worker(settings, stop)
