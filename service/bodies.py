"""Request bodies read with a stall limit and decoded here: a client that stops sending is cut
off, and a body that does not decode whole is refused before anything is kept."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from service.errors import BadEncoding, PayloadTooLarge, RequestTimeout, UnsupportedEncoding

CHUNK = 1 << 16
# zlib's window bits: 16 + 15 reads the gzip wrapper, 15 the zlib one (HTTP's "deflate")
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


async def raw_chunks(request: web.Request, stall: float) -> AsyncIterator[bytes]:
    """The body as sent; RequestTimeout when no byte arrives for `stall` seconds."""
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


async def chunks(request: web.Request, stall: float) -> AsyncIterator[bytes]:
    """The body decoded (the server runs with aiohttp's own decoding off, which let a body
    that failed to decode through as an empty one); BadEncoding unless it decodes whole."""
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        async for chunk in raw_chunks(request, stall):
            yield chunk
        return
    if encoding not in _WBITS:
        raise UnsupportedEncoding(f"Content-Encoding {encoding!r} is not supported: send"
                                  " identity, gzip or deflate")
    decoder = zlib.decompressobj(_WBITS[encoding])
    async for chunk in raw_chunks(request, stall):
        for part in _decoded(decoder, chunk, encoding):
            yield part
    if not decoder.eof or decoder.unused_data:
        why = "ends early" if not decoder.eof else "has bytes after its end"
        raise BadEncoding(f"the {encoding} body {why}: nothing was stored")


def _decoded(decoder: zlib._Decompress, data: bytes, encoding: str) -> list[bytes]:
    """`data` decoded in pieces of at most CHUNK bytes, so a small, very compressible body
    cannot inflate past the size limits inside one call."""
    parts = []
    try:
        while data and not decoder.eof:
            parts.append(decoder.decompress(data, CHUNK))
            data = decoder.unconsumed_tail
    except zlib.error:
        raise BadEncoding(f"the body is not valid {encoding} data: nothing was stored"
                          ) from None
    if data or (decoder.eof and decoder.unused_data):
        raise BadEncoding(f"the {encoding} body has bytes after its end: nothing was stored")
    return [p for p in parts if p]


async def counted(body: AsyncIterator[bytes], add: Callable[[int], None]
                  ) -> AsyncIterator[bytes]:
    """`body`, with each chunk's size passed to `add` (a quota) before it is written."""
    async for chunk in body:
        add(len(chunk))
        yield chunk


async def read_body(request: web.Request, max_bytes: int, stall: float) -> bytes:
    """The whole body decoded, at most `max_bytes`, with the same stall limit."""
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
