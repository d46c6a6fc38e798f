"""The callback listener: the job service POSTs finished jobs here, signed with our key."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Callable, Coroutine

from aiohttp import web

from bot.jobapi import Job
from storage import JobRecord, JobStore
from wire.jobs import JobWire
from wire.signature import SIGNATURE_HEADER, callback_signature

log = logging.getLogger(__name__)

OnCallback = Callable[[JobRecord, Job], Coroutine[object, object, None]]


class CallbackListener:
    """An aiohttp server at `/callbacks/{token}`; one unguessable token per job."""

    def __init__(self, jobs: JobStore, secret_key: str, on_callback: OnCallback) -> None:
        self._jobs = jobs
        self._secret_key = secret_key
        self._on_callback = on_callback
        self._runner: web.AppRunner | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self.port: int | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_post("/callbacks/{token}", self.handle)
        return app

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        # Port 0 picks a free port; remember which, for the callback URLs.
        addresses = self._runner.addresses
        self.port = int(addresses[0][1]) if addresses else port
        log.info("callback listener on %s:%s", host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for task in list(self._pending):
            task.cancel()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        record = await self._jobs.by_callback_token(request.match_info["token"])
        if record is None:
            return web.json_response({"error": "no job has this callback URL"}, status=404)
        expected = callback_signature(self._secret_key, body).encode()
        # Bytes: compare_digest refuses non-ASCII str, which a forged header can carry.
        given = request.headers.get(SIGNATURE_HEADER, "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(expected, given):
            log.warning("job %s: callback with a bad signature refused", record.id)
            return web.json_response({"error": "bad signature"}, status=401)
        try:
            job = Job.parse(_job_wire(body))
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "the body is not a Job"}, status=400)
        if job.id != record.service_job_id and not (
            record.service_job_id is None and job.custom_id == record.custom_id
        ):
            # Signed by our key, but not the job this token was issued for.
            return web.json_response({"error": "not the job of this callback URL"}, status=409)
        # Answer now; delivering can take minutes and the service must not wait for it.
        task = asyncio.create_task(self._on_callback(record, job))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return web.Response(status=204)


def _job_wire(body: bytes) -> JobWire:
    value = json.loads(body)
    if not isinstance(value, dict) or not isinstance(value.get("id"), str):
        raise ValueError("not a Job")
    job: JobWire = value  # type: ignore[assignment]
    return job
