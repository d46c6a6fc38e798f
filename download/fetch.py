"""Guarded URL download: bounded size, time and redirects; no private addresses by default."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from download.addresses import Endpoint, endpoint, is_public, literal_address, url_endpoint
from download.errors import BodyTooLarge, DownloadError, UrlNotAllowed


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """How much, how long and where a download may go."""

    max_bytes: int
    timeout: float
    max_redirects: int
    allow_private: bool
    # exactly these host:port pairs are reachable even when not public (the bot's listener)
    allow: frozenset[Endpoint] = frozenset()
    min_rate: int = 0  # bytes/s over every `rate_window` seconds; 0: no floor
    rate_window: float = 30.0


class PublicResolver(AbstractResolver):
    """Resolves as usual, then refuses any answer that is not a public address.

    The connection is made to the address checked here, so a DNS answer that changes
    between a check and the connect (rebinding) cannot slip through.
    """

    def __init__(self, allow: frozenset[Endpoint] = frozenset()) -> None:
        self._inner = DefaultResolver()
        self._allow = allow

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if endpoint(host, port) in self._allow:
            return results
        for result in results:
            if not is_public(ipaddress.ip_address(result["host"])):
                raise UrlNotAllowed(f"{host} resolves to a non-public address")
        return results

    async def close(self) -> None:
        await self._inner.close()


async def check_url(url: str, limits: FetchLimits, name: str) -> None:
    """Refuse at creation what the download would refuse: non-public hosts."""
    if limits.allow_private or url_endpoint(url) in limits.allow:
        return
    host = urlsplit(url).hostname or ""
    address = literal_address(host)
    if address is not None:
        if not is_public(address):
            raise UrlNotAllowed(f"{name}: {host} is not a public address")
        return
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, None), 5)
    except (OSError, TimeoutError):
        return  # unresolvable now: the download decides later, with the same guard
    for info in infos:
        if not is_public(ipaddress.ip_address(info[4][0])):
            raise UrlNotAllowed(f"{name}: {host} resolves to a non-public address")


def session(limits: FetchLimits, **kwargs: Any) -> aiohttp.ClientSession:
    """A client session whose connector applies the address guard (unless allowed)."""
    resolver = None if limits.allow_private else PublicResolver(limits.allow)
    connector = aiohttp.TCPConnector(resolver=resolver, limit=16)
    return aiohttp.ClientSession(connector=connector, **kwargs)


def guard_hop(url: str, limits: FetchLimits) -> None:
    """Each URL of a redirect chain: http(s) only, and no literal private address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UrlNotAllowed(f"only http and https URLs can be fetched, not {url!r}")
    if url_endpoint(url) in limits.allow:
        return
    address = literal_address(parts.hostname)
    if address is not None and not limits.allow_private and not is_public(address):
        raise UrlNotAllowed(f"{parts.hostname} is not a public address")


Counter = Callable[[int], None]


@contextlib.asynccontextmanager
async def rate_floor(min_rate: int, window: float) -> AsyncIterator[Counter]:
    """Yields a byte counter; the block fails when `window` seconds bring fewer than
    `min_rate * window` bytes. Each window starts when the previous one was filled."""
    if min_rate <= 0:
        yield lambda size: None
        return
    need, got, loop = min_rate * window, 0, asyncio.get_running_loop()
    scope = asyncio.timeout(window)

    def count(size: int) -> None:
        nonlocal got
        got += size
        if got >= need:
            got = 0
            scope.reschedule(loop.time() + window)

    try:
        async with scope:
            yield count
    except TimeoutError:
        if not scope.expired():
            raise
        raise DownloadError("DOWNLOAD_FAILED", f"the download was too slow: under {min_rate}"
                            f" bytes/s for {window:g} s") from None


async def download(client: aiohttp.ClientSession, url: str, target: Path,
                   limits: FetchLimits) -> int:
    """Fetch `url` into `target`; raises DownloadError with a code saying what went wrong."""
    try:
        async with asyncio.timeout(limits.timeout), \
                rate_floor(limits.min_rate, limits.rate_window) as count:
            return await _follow(client, url, target, limits, count)
    except TimeoutError:
        raise DownloadError(
            "DOWNLOAD_TIMEOUT", f"download took longer than {limits.timeout:g} s"
        ) from None
    except UrlNotAllowed as error:
        raise DownloadError("URL_NOT_ALLOWED", error.message) from None
    except aiohttp.ClientError as error:
        raise DownloadError("DOWNLOAD_FAILED", f"download failed: {error}") from None


async def _follow(client: aiohttp.ClientSession, url: str, target: Path,
                  limits: FetchLimits, count: Counter) -> int:
    for _ in range(limits.max_redirects + 1):
        guard_hop(url, limits)
        async with client.get(url, allow_redirects=False) as response:
            if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                url = redirect_target(url, response.headers["Location"])
                continue
            if response.status != 200:
                raise DownloadError("DOWNLOAD_FAILED", f"the URL answered HTTP {response.status}")
            return await _save(response, target, limits.max_bytes, count)
    raise DownloadError("DOWNLOAD_FAILED", f"more than {limits.max_redirects} redirects")


def redirect_target(url: str, location: str) -> str:
    """The absolute URL a Location header names; DOWNLOAD_FAILED when it is no URL at all."""
    try:
        target = urljoin(url, location)
        yarl.URL(target)  # what the client will parse; urlsplit misses some of its refusals
        urlsplit(target).port  # noqa: B018 (a malformed host or port raises here)
    except ValueError:
        raise DownloadError("DOWNLOAD_FAILED",
                            f"the URL redirected to a malformed URL: {location[:200]!r}") from None
    return target


async def _save(response: aiohttp.ClientResponse, target: Path, max_bytes: int,
                count: Counter) -> int:
    too_large = DownloadError("INPUT_TOO_LARGE", f"the file is over the {max_bytes} byte limit")
    if (response.content_length or 0) > max_bytes:
        raise too_large
    try:
        return await stream_to_file(response, target, max_bytes, count)
    except BodyTooLarge:
        raise too_large from None


async def stream_to_file(
    response: aiohttp.ClientResponse, target: Path, max_bytes: int | None,
    count: Counter | None = None,
) -> int:
    """Write a response body to `target` off the event loop; BodyTooLarge past `max_bytes`."""
    size = 0
    file = await asyncio.to_thread(target.open, "wb")
    try:
        async for chunk in response.content.iter_chunked(1 << 16):
            size += len(chunk)
            if count is not None:
                count(len(chunk))
            if max_bytes is not None and size > max_bytes:
                raise BodyTooLarge
            await asyncio.to_thread(file.write, chunk)
    finally:
        await asyncio.to_thread(file.close)
    return size
