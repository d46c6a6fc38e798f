"""Callback delivery: POST the final Job, HMAC-signed, retried with backoff, recorded.

The deliveries are an outbox in the job table, so they survive restarts and node deaths."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import aiohttp

from download.addresses import endpoints
from download.fetch import FetchLimits, guard_hop
from download.fetch import session as guarded_session
from service.protocol import Job
from service.settings import ServiceSettings
from service.store import Store, now_ms
from wire.signature import SIGNATURE_HEADER, callback_signature

log = logging.getLogger("stembot.callbacks")


def callback_limits(settings: ServiceSettings) -> FetchLimits:
    """Callbacks go to public addresses, and to exactly the allowed host:port pairs."""
    return FetchLimits(0, settings.callback_timeout, 0, settings.allow_private_callbacks,
                       endpoints(",".join(settings.callback_allow)))


class Callbacks:
    """The outbox's delivery loop: any node claims a due PENDING delivery under a lease,
    makes one attempt and records it; a node dying mid-delivery leaves it to another once
    the lease ends (at least once), with the same attempt numbering."""

    def __init__(self, settings: ServiceSettings, store: Store) -> None:
        self._settings = settings
        self._store = store
        self._limits = callback_limits(settings)
        self._client: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        # held longer than one attempt can take, so that no live node loses its delivery
        self._lease_s = max(2 * settings.callback_timeout + 5, settings.lease_seconds)

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self._settings.callback_timeout)
        self._client = guarded_session(self._limits, timeout=timeout)
        loop = asyncio.create_task(self._claim_loop(), name="callbacks")
        self._tasks.add(loop)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.close()

    def schedule(self, job: Job) -> None:
        """A job just ended here: look for its delivery now rather than at the next poll."""
        if job.callback and job.callback_state == "PENDING":
            self._wake.set()

    async def _claim_loop(self) -> None:
        poll = max(0.05, min(self._settings.sweep_interval, 1.0))
        while True:
            self._wake.clear()
            try:
                job = await self._store.claim_callback(self._lease_s)
            except Exception:  # the database is away: look again later
                log.warning("claiming a callback failed", exc_info=True)
                job = None
            if job is None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(poll):
                        await self._wake.wait()
                continue
            task = asyncio.create_task(self._deliver(job), name=f"callback-{job.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, job: Job) -> None:
        """One attempt; a failure is due again after the backoff, until the attempts run out."""
        body = json.dumps(job.wire(), separators=(",", ":")).encode()
        secret_key = await self._store.signing_key(job.owner) or ""
        attempts = job.callback_attempts + 1
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: callback_signature(secret_key, body),
            "X-Stembot-Job-Id": job.id,
            "X-Stembot-Delivery-Attempt": str(attempts),
        }
        try:
            error = await self._post(job.callback, body, headers)
        except asyncio.CancelledError:  # this node stops: the delivery is due again at once
            await asyncio.shield(self._store.record_callback(
                job.id, "PENDING", job.callback_attempts, job.callback_error))
            raise
        if not error:
            await self._store.record_callback(job.id, "DELIVERED", attempts, "")
            return
        log.warning("callback for job %s, attempt %d: %s", job.id, attempts, error)
        if attempts >= self._settings.callback_attempts:
            await self._store.record_callback(job.id, "FAILED", attempts, error)
            return
        due = now_ms() + int(1000 * self._settings.callback_backoff * 2 ** (attempts - 1))
        await self._store.record_callback(job.id, "PENDING", attempts, error, due)
        self._wake.set()

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
