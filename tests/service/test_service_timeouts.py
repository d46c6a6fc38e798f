"""Read timeouts on raw sockets: slow headers and stalled bodies are cut off."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from service_harness import Running, serving
from yarl import URL

# The service under test gives up after 1 s; a test waits at most this long for it.
WITHIN = 5.0


@pytest.fixture
async def strict(tmp_path: Path) -> AsyncIterator[Running]:
    async with serving(tmp_path / "data", header_timeout=1.0, body_timeout=1.0) as running:
        yield running


@contextlib.asynccontextmanager
async def connection(running: Running
                     ) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    url = URL(running.service.url)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def closed_after(reader: asyncio.StreamReader) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    started = time.monotonic()
    async with asyncio.timeout(WITHIN):
        data = await reader.read()
    return data, time.monotonic() - started


def head(method: str, path: str, length: int, *extra: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {length}",
             *extra, "", ""]
    return "\r\n".join(lines).encode()


def basic(running: Running) -> str:
    key = running.api.key
    token = base64.b64encode(f"{key.secret_id}:{key.secret_key}".encode()).decode()
    return f"Authorization: Basic {token}"


async def test_a_silent_connection_is_closed(strict: Running) -> None:
    async with connection(strict) as (reader, _):
        data, seconds = await closed_after(reader)
    assert data == b"" and 0.9 <= seconds < WITHIN


async def test_headers_sent_a_line_at_a_time_are_cut_off(strict: Running) -> None:
    """A header line every 0.3 s never completes a request within the 1 s limit."""
    async with connection(strict) as (reader, writer):
        writer.write(b"POST /release/job HTTP/1.1\r\n")
        ended = asyncio.ensure_future(closed_after(reader))
        lines = 0
        while not ended.done() and lines < 3 * WITHIN / 0.3:
            with contextlib.suppress(ConnectionError):
                writer.write(f"X-Line-{lines}: slow\r\n".encode())
            lines += 1
            await asyncio.wait([ended], timeout=0.3)
        data, seconds = await ended
    assert data == b"" and seconds < 2.5


@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_a_stalled_body_gets_408_and_the_connection_closes(strict: Running,
                                                                 method: str) -> None:
    mine = strict.api.key.default_content
    path = "/release/job" if method == "POST" else f"/content/{mine}/stalled.bin"
    async with connection(strict) as (reader, writer):
        writer.write(head(method, path, 1000, basic(strict)) + b"{" + b" " * 99)
        data, seconds = await closed_after(reader)
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert b'"code": "REQUEST_TIMEOUT"' in data and b"stalled for 1 s" in data
    assert seconds < WITHIN
    status, _ = await strict.api.raw("GET", f"/content/{mine}/stalled.bin",
                                     headers={"Authorization": basic(strict).split(": ")[1]})
    assert status == 404  # nothing half-written is left


async def test_a_slow_upload_may_go_on_but_not_fall_silent(strict: Running) -> None:
    """The limit is on silence, not on the whole upload: 2 s of trickle, never 1 s quiet."""
    async def trickle(name: str, sent: int) -> bytes:
        async with connection(strict) as (reader, writer):
            writer.write(head("PUT", f"/content/{strict.api.key.default_content}/{name}", 8,
                              basic(strict),
                              "Connection: close"))
            for _ in range(sent):
                writer.write(b"x")
                await asyncio.sleep(0.25)  # the pace of the upload, which the test is about
            data, _ = await closed_after(reader)
        return data

    assert (await trickle("steady.bin", 8)).startswith(b"HTTP/1.1 201 ")
    assert (await trickle("halted.bin", 4)).startswith(b"HTTP/1.1 408 ")
