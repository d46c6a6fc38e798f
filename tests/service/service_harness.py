"""Helpers for the job service's tests: a loopback origin, settings, a checking API client."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yarl
from aiohttp import web
from openapi_check import check, response_schema

from separation import OutputFormat
from service.app import RunningService, start_service
from service.settings import ServiceSettings
from service.state import SERVICE
from service.store import NewKey, Store, open_store

DOCUMENT = json.loads((Path(__file__).parents[2] / "service" / "openapi.json").read_text())


@dataclass
class Origin:
    """A loopback web server: files to fetch, slow, trickling and redirecting URLs, a
    callback receiver."""

    url: str
    files: dict[str, bytes] = field(default_factory=dict)
    callbacks: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)
    refuse_callbacks: bool = False
    received: asyncio.Event = field(default_factory=asyncio.Event)

    def callbacks_for(self, job_id: str) -> list[tuple[bytes, dict[str, str]]]:
        return [(body, headers) for jid, body, headers in self.callbacks if jid == job_id]

    async def wait_callback(self, job_id: str, within: float = 60
                            ) -> tuple[bytes, dict[str, str]]:
        async with asyncio.timeout(within):
            while not self.callbacks_for(job_id):
                self.received.clear()
                await self.received.wait()
        return self.callbacks_for(job_id)[-1]


async def start_origin() -> tuple[Origin, web.AppRunner]:
    origin = Origin(url="")

    async def file(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in origin.files:
            raise web.HTTPNotFound()
        return web.Response(body=origin.files[name])

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("s", "5")))
        return web.Response(body=b"late")

    async def trickle(request: web.Request) -> web.StreamResponse:
        """`n` bytes, one every `every` seconds: a slow link."""
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(int(request.query.get("n", "600"))):
            await response.write(b"x")
            await asyncio.sleep(float(request.query.get("every", "0.1")))
        return response

    async def redirect(request: web.Request) -> web.Response:
        left = int(request.match_info["n"])
        target = "/files/clip.wav" if left <= 0 else f"/redirect/{left - 1}"
        raise web.HTTPFound(target)

    async def goto(request: web.Request) -> web.Response:
        # raw, so that the test decides exactly what the Location header holds
        return web.Response(status=302, headers={"Location": request.query["to"]})

    async def callback(request: web.Request) -> web.Response:
        body = await request.read()
        if origin.refuse_callbacks:
            return web.Response(status=503)
        job_id = json.loads(body)["id"]
        origin.callbacks.append((job_id, body, dict(request.headers)))
        origin.received.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/files/{name}", file)
    app.router.add_get("/slow", slow)
    app.router.add_get("/trickle", trickle)
    app.router.add_get("/redirect/{n}", redirect)
    app.router.add_get("/goto", goto)
    app.router.add_post("/callback", callback)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    origin.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    return origin, runner


def make_settings(data_dir: Path, **changes: Any) -> ServiceSettings:
    """Small timings so retries, sweeps and timeouts happen within a test."""
    base = ServiceSettings(host="127.0.0.1", port=0, data_dir=data_dir,
                           allow_private_networks=True, allow_private_callbacks=True,
                           callback_backoff=0.2,
                           callback_attempts=3, fetch_timeout=10, sweep_interval=0.1)
    return base.with_changes(**changes)


async def new_key(settings: ServiceSettings, name: str = "test") -> NewKey:
    store = await open_store(settings)
    try:
        return await store.create_key(name)
    finally:
        await store.close()


def basic_header(key: NewKey) -> dict[str, str]:
    token = base64.b64encode(f"{key.secret_id}:{key.secret_key}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class Api:
    """A protocol client that checks every answer against the OpenAPI document."""

    def __init__(self, client: aiohttp.ClientSession, url: str, key: NewKey) -> None:
        self.client = client
        self.url = url
        self.key = key

    async def raw(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        # encoded=True: the path goes out as written, '..' and '%2e' included
        url = yarl.URL(self.url + path, encoded=True)
        async with self.client.request(method, url, **kwargs) as response:
            data = await response.read()
            schema = response_schema(DOCUMENT, path.split("?")[0], method, response.status)
            if schema is None:
                return response.status, data
            body = json.loads(data)
            check(DOCUMENT, schema, body)
            return response.status, body

    async def call(self, action: str, request: dict[str, Any] | None = None,
                   key: NewKey | None = None, section: str | None = None) -> tuple[int, Any]:
        key = key or self.key
        body: dict[str, Any] = {"action": action, "secretId": key.secret_id,
                                "secretKey": key.secret_key}
        if request is not None:
            body[section or action[0].lower() + action[1:] + "Request"] = request
        return await self.raw("POST", "/release/job", json=body)

    async def ok(self, action: str, request: dict[str, Any], key: NewKey | None = None
                 ) -> dict[str, Any]:
        status, body = await self.call(action, request, key)
        assert status == 200, body
        result: dict[str, Any] = body[action[0].lower() + action[1:] + "Response"]
        return result

    async def repository(self, name: str = "", key: NewKey | None = None) -> str:
        """A new repository of the key's, made by the service (CreateRepository)."""
        request = {"name": name} if name else {}
        content_id: str = (await self.ok("CreateRepository", request, key))["contentId"]
        return content_id

    async def create(self, inputs: list[dict[str, Any]], method: int = 1,
                     key: NewKey | None = None, **fields: Any) -> dict[str, Any]:
        request = {"inputs": inputs, "outputs": [{
            "inputSelectors": [0], "smartContentDescriptor": {"musicSeperate": {"method": method}},
        }], **fields}
        job: dict[str, Any] = (await self.ok("CreateJob", request, key))["job"]
        return job

    async def job(self, job_id: str, key: NewKey | None = None) -> dict[str, Any]:
        job: dict[str, Any] = (await self.ok("GetJob", {"id": job_id}, key))["job"]
        return job

    async def until(self, job_id: str, ready: Callable[[dict[str, Any]], bool],
                    within: float = 90, key: NewKey | None = None) -> dict[str, Any]:
        """Poll GetJob until `ready(job)`, as a client of the protocol without a callback does."""
        async with asyncio.timeout(within):
            while not ready(job := await self.job(job_id, key)):  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        return job

    async def wait(self, job_id: str, states: tuple[int, ...] = (3, 4, 5),
                   within: float = 90, key: NewKey | None = None) -> dict[str, Any]:
        return await self.until(job_id, lambda job: job["state"] in states, within, key)


def free_port() -> int:
    """A port nothing listens on now, for a service whose settings must name its own URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Running:
    service: RunningService
    settings: ServiceSettings
    api: Api
    other: NewKey


@contextlib.asynccontextmanager
async def serving(data_dir: Path, storage: dict[str, Any] | None = None, database: str = "",
                  **changes: Any) -> AsyncIterator[Running]:
    """A service on `make_settings(data_dir, **changes)` with two keys, alice and bob;
    `storage`: settings of another content store (an S3 bucket: SeaweedFS.settings);
    `database`: a STEMBOT_DATABASE_URL (PostgreSQL) instead of the data folder's SQLite."""
    settings = make_settings(data_dir, database_url=database, **{**(storage or {}), **changes})
    key, other = await new_key(settings, "alice"), await new_key(settings, "bob")
    service = await start_service(settings)
    try:
        async with aiohttp.ClientSession() as client:
            yield Running(service, settings, Api(client, service.url, key), other)
    finally:
        await service.stop()


class Separated:
    """A completed job on a running service, and where its stems are."""

    def __init__(self, running: Running, job: dict[str, Any]) -> None:
        self.running, self.job = running, job
        self.api: Api = running.api
        output = job["outputs"][0]
        self.content_id: str = output["contentId"]
        self.results = {r["fileName"].rsplit("-", 1)[1].split(".")[0]: r["fileName"]
                        for r in output["smartContentResult"]["musicSeperate"]}

    def folder(self) -> Path:
        return self.running.settings.content_dir / self.content_id

    def store(self) -> Store:
        return self.running.service.runner.app[SERVICE].store

    def files(self) -> set[str]:
        return {str(p.relative_to(self.folder())) for p in self.folder().rglob("*")}


@contextlib.asynccontextmanager
async def separated_job(data_dir: Path, clip: Path, method: int = 2, **changes: Any
                        ) -> AsyncIterator[Separated]:
    """A service with a COMPLETED job of `clip` (uploaded, then separated by the real model),
    its stems in wav-float so that sums can be checked sample for sample."""
    async with serving(data_dir, output_format=OutputFormat.WAV_FLOAT, **changes) as running:
        api, key = running.api, running.api.key
        status, _ = await api.raw("PUT", f"/content/{key.default_content}/clip.wav",
                                  data=await asyncio.to_thread(clip.read_bytes),
                                  headers=basic_header(key))
        assert status == 201
        created = await api.create([{"source": {"contentId": key.default_content,
                                                "path": "clip.wav"}}], method=method)
        job = await api.wait(created["id"], within=180)
        assert job["state"] == 3, job
        yield Separated(running, job)


@contextlib.asynccontextmanager
async def separated_on_two_origins(data_dir: Path, clip: Path) -> AsyncIterator[Separated]:
    """`separated_job` on the recommended public set-up: the pages on 127.0.0.1, user files
    from a content origin of their own (localhost, the same server)."""
    port = free_port()
    async with separated_job(data_dir, clip, port=port, public_url=f"http://127.0.0.1:{port}",
                             content_url=f"http://localhost:{port}") as job:
        yield job
