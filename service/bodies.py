"""Request bodies read with a stall limit: a client that stops sending is cut off."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from service.errors import PayloadTooLarge, RequestTimeout

CHUNK = 1 << 16


async def chunks(request: web.Request, stall: float) -> AsyncIterator[bytes]:
    """The body in chunks; RequestTimeout when no byte arrives for `stall` seconds."""
    stream = request.content.iter_chunked(CHUNK)
    while True:
        try:
            async with asyncio.timeout(stall):
                chunk = await anext(stream)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise RequestTimeout(f"the request body stalled for {stall:g} s") from None
        yield chunk


async def counted(body: AsyncIterator[bytes], add: Callable[[int], None]
                  ) -> AsyncIterator[bytes]:
    """`body`, with each chunk's size passed to `add` (a quota) before it is written."""
    async for chunk in body:
        add(len(chunk))
        yield chunk


async def read_body(request: web.Request, max_bytes: int, stall: float) -> bytes:
    """The whole body, at most `max_bytes`, with the same stall limit."""
    body = bytearray()
    async for chunk in chunks(request, stall):
        body += chunk
        if len(body) > max_bytes:
            raise PayloadTooLarge(f"the body is over the {max_bytes} byte limit")
    return bytes(body)


async def cut_off(response: web.Response, request: web.Request) -> web.Response:
    """Send the answer, then close: a stalled client must not keep its connection."""
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    if request.transport is not None:
        request.transport.close()
    return response
