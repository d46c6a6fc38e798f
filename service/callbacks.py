"""Callback delivery: POST the final Job, HMAC-signed, retried with backoff, recorded."""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp

from service.auth import SIGNATURE_HEADER, callback_signature
from service.fetch import FetchLimits, endpoints, guard_hop
from service.fetch import session as guarded_session
from service.protocol import Job
from service.settings import ServiceSettings
from service.store import Store

log = logging.getLogger("stembot.callbacks")


def callback_limits(settings: ServiceSettings) -> FetchLimits:
    """Callbacks go to public addresses, and to exactly the allowed host:port pairs."""
    return FetchLimits(0, settings.callback_timeout, 0, settings.allow_private_callbacks,
                       endpoints(",".join(settings.callback_allow)))


class Callbacks:
    """One delivery task per final job; pending deliveries survive a restart in the DB."""

    def __init__(self, settings: ServiceSettings, store: Store) -> None:
        self._settings = settings
        self._store = store
        self._limits = callback_limits(settings)
        self._client: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self._settings.callback_timeout)
        self._client = guarded_session(self._limits, timeout=timeout)
        for job in await self._store.pending_callbacks():
            self.schedule(job)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.close()

    def schedule(self, job: Job) -> None:
        if job.callback and job.callback_state == "PENDING":
            task = asyncio.create_task(self._deliver(job), name=f"callback-{job.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, job: Job) -> None:
        body = json.dumps(job.wire(), separators=(",", ":")).encode()
        secret_key = await self._store.signing_key(job.owner) or ""
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: callback_signature(secret_key, body),
            "X-Stembot-Job-Id": job.id,
        }
        attempts = job.callback_attempts
        error = ""
        while attempts < self._settings.callback_attempts:
            # The first try in this process is immediate, also after a restart.
            if attempts > job.callback_attempts:
                await asyncio.sleep(self._settings.callback_backoff * 2 ** (attempts - 1))
            attempts += 1
            error = await self._post(job.callback, body, headers | {
                "X-Stembot-Delivery-Attempt": str(attempts)})
            if not error:
                await self._store.record_callback(job.id, "DELIVERED", attempts, "")
                return
            log.warning("callback for job %s, attempt %d: %s", job.id, attempts, error)
            await self._store.record_callback(job.id, "PENDING", attempts, error)
        await self._store.record_callback(job.id, "FAILED", attempts, error)

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> str:
        """Empty on a 2xx answer, else what went wrong (recorded on the job)."""
        assert self._client is not None
        try:
            guard_hop(url, self._limits)
            async with self._client.post(url, data=body, headers=headers,
                                         allow_redirects=False) as response:
                if 200 <= response.status < 300:
                    return ""
                return f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as error:
            return f"{type(error).__name__}: {error}"
        except Exception as error:  # the address guard, or anything else: record, retry
            return str(error) or type(error).__name__
