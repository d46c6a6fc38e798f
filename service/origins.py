"""STEMBOT_CONTENT_URL: user files from an origin of their own, as code hosts serve them.

With it set, the content host answers signed file links (and /healthz) only, and a signed link
that reaches the pages' host is sent there; the pages may load media from it, nothing else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from service.errors import NotFound
from service.settings import origin
from service.state import SERVICE, Service

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_signed_link(request: web.Request) -> bool:
    return (request.method in ("GET", "HEAD") and request.path.startswith("/content/")
            and "signature" in request.query)


@web.middleware
async def split_origins(request: web.Request, handler: Handler) -> web.StreamResponse:
    content = request.app[SERVICE].settings.content_url
    if not content:
        return await handler(request)
    on_content_host = request.host.lower() == urlsplit(content).netloc.lower()
    if on_content_host and not (is_signed_link(request) or request.path == "/healthz"):
        raise NotFound("this host serves signed content links only")
    if not on_content_host and is_signed_link(request):
        raise web.HTTPTemporaryRedirect(content + request.path_qs)
    return await handler(request)


def link_headers(service: Service) -> dict[str, str]:
    """What a signed file link adds: with a content origin, the pages' origin may read it
    (the player's script fetches stems from there)."""
    if not service.settings.content_url:
        return {}
    return {"Access-Control-Allow-Origin": origin(service.base_url), "Vary": "Origin"}


def media_sources(service: Service) -> str:
    """The page policy's extra source for media and fetch(): the content origin, if any."""
    return f" {origin(service.settings.content_url)}" if service.settings.content_url else ""
