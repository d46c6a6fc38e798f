"""A guarded forward proxy on loopback: the connect-time check for yt-dlp's connections.

yt-dlp follows redirects inside its HTTP handler and its generic extractor requests the
final URL again, so a check of each URL before yt-dlp sees it lets a request through to a
private address. Instead every connection yt-dlp makes goes through this proxy (it is told
to use it for all requests, and may use no other HTTP handler): the proxy resolves the
target itself, refuses unless every resolved address passes the same rules as inputs
(`is_public`, STEMBOT_ALLOW_PRIVATE_NETWORKS, the STEMBOT_FETCH_ALLOW pairs), and connects
to the address it checked, so a DNS answer that changes in between cannot slip through.

It speaks what yt-dlp's urllib handler sends: CONNECT host:port for https (a byte tunnel
after the check), and absolute-form requests for http (sent on as origin-form with
`Connection: close`, one request per connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import urlsplit

from download.addresses import Endpoint, endpoint, is_public
from download.errors import UrlNotAllowed
from download.fetch import FetchLimits

log = logging.getLogger("stembot.download")

MAX_HEAD = 64 * 1024  # a request's line and headers
CHUNK = 1 << 16
_HOP_HEADERS = {b"connection", b"proxy-connection", b"keep-alive", b"proxy-authorization",
                b"proxy-authenticate", b"te", b"trailer", b"upgrade"}


@dataclass
class Traffic:
    """What went through: for the caller's error message, logs and tests."""

    connects: list[Endpoint] = field(default_factory=list)  # allowed, in order
    refused: list[str] = field(default_factory=list)  # why, in order
    received: int = 0  # bytes from the sites


class GuardProxy:
    """`async with GuardProxy(limits) as proxy:` then give yt-dlp `proxy.url`.

    `count` is called with each chunk's size received from a site (a rate floor's counter).
    Leaving the block, or `close()`, ends every connection at once: a download past its
    deadline stops there, whatever yt-dlp's thread is doing.
    """

    def __init__(self, limits: FetchLimits, count: Callable[[int], None] | None = None,
                 connect_timeout: float = 20.0) -> None:
        self._limits = limits
        self._count = count
        self._connect_timeout = connect_timeout
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.traffic = Traffic()
        self.url = ""

    async def __aenter__(self) -> GuardProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0,
                                                  limit=MAX_HEAD)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # --- one client connection -------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self._closed:
            writer.close()
            return
        self._tasks.add(task)
        try:
            await self._handle(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                TimeoutError):
            pass  # the client or the site went away, or sent nonsense: nothing to answer
        except asyncio.CancelledError:
            pass  # closed: the server's own callback must not see a cancelled task
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(self._connect_timeout):
            head = await reader.readuntil(b"\r\n\r\n")
        line, _, rest = head.partition(b"\r\n")
        method, target, version = line.decode("latin-1").split(" ", 2)
        if method.upper() == "CONNECT":
            host, port = _host_port(target)
            upstream = await self._open(host, port, writer)
            if upstream is None:
                return
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await self._relay(reader, writer, *upstream)
            return
        parts = urlsplit(target)
        if parts.scheme != "http" or not parts.hostname:
            await _answer(writer, 400, f"only CONNECT and http:// requests, not {target[:100]!r}")
            return
        upstream = await self._open(parts.hostname, parts.port or 80, writer)
        if upstream is None:
            return
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        headers = [h for h in rest.split(b"\r\n")
                   if h and h.split(b":", 1)[0].strip().lower() not in _HOP_HEADERS]
        first = f"{method} {path} {version}\r\n".encode("latin-1")
        tail = [b"Via: 1.1 stembot-guard", b"Connection: close"]  # Via: RFC 9110 7.6.3
        upstream[1].write(first + b"\r\n".join([*headers, *tail]) + b"\r\n\r\n")
        await self._relay(reader, writer, *upstream)

    async def _open(self, host: str, port: int, writer: asyncio.StreamWriter
                    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """A connection to a checked address of host:port, or None once the client was
        answered why not."""
        try:
            addresses = await self._checked(host, port)
        except UrlNotAllowed as refused:
            self.traffic.refused.append(refused.message)
            log.info("download refused: %s", refused.message)
            await _answer(writer, 403, refused.message)
            return None
        except OSError as error:
            await _answer(writer, 502, f"{host} could not be resolved ({error})")
            return None
        failure: Exception | None = None
        for address in addresses:
            try:
                async with asyncio.timeout(self._connect_timeout):
                    opened = await asyncio.open_connection(address, port, limit=CHUNK)
            except (OSError, TimeoutError) as error:
                failure = error
                continue
            self.traffic.connects.append(endpoint(host, port))
            return opened
        await _answer(writer, 502, f"could not connect to {host}:{port} ({failure})")
        return None

    async def _checked(self, host: str, port: int) -> list[str]:
        """Every address `host` resolves to, once all of them passed the input rules."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        limits = self._limits
        if limits.allow_private or endpoint(host, port) in limits.allow:
            return addresses
        for address in addresses:
            if not is_public(ipaddress.ip_address(address.split("%", 1)[0])):
                raise UrlNotAllowed(f"{host} is not a public address" if host.strip("[]")
                                    == address else f"{host} resolves to a non-public address")
        return addresses

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter) -> None:
        """Bytes both ways until either side closes."""

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter,
                       counted: bool) -> None:
            try:
                while chunk := await source.read(CHUNK):
                    if counted:
                        self.traffic.received += len(chunk)
                        if self._count is not None:
                            self._count(len(chunk))
                    sink.write(chunk)
                    await sink.drain()
            finally:
                if sink.can_write_eof():
                    with contextlib.suppress(OSError):
                        sink.write_eof()

        sending = asyncio.create_task(pipe(reader, up_writer, False))
        try:
            await pipe(up_reader, writer, True)
        finally:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
            up_writer.close()
            with contextlib.suppress(Exception):
                await up_writer.wait_closed()


def _host_port(target: str) -> tuple[str, int]:
    parts = urlsplit("//" + target)
    if not parts.hostname or parts.port is None:
        raise ValueError(f"{target!r} is not host:port")
    return parts.hostname, parts.port


async def _answer(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    reason = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}[status]
    body = message.encode()
    writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n"
                 f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    with contextlib.suppress(OSError):
        await writer.drain()
