"""The service's pages: one HTML shell with its data, the policy every page runs under, the
pages' own static files, and the start page."""

from __future__ import annotations

import asyncio
import html
import json
from pathlib import Path
from typing import Any

from aiohttp import web

STATIC = Path(__file__).parent / "static"
page_routes = web.RouteTableDef()


def policy(media: str = "") -> str:
    """The pages run only their own script and styles and talk only to this service (and read
    media from the content origin, `media`, where there is one); no one may frame them."""
    return ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
            f" media-src 'self' blob:{media}; connect-src 'self'{media}; base-uri 'none';"
            " form-action 'none'; frame-ancestors 'none'")


def page(title: str, data: dict[str, Any], script: str, styles: tuple[str, ...]) -> str:
    """A page: its stylesheets (URLs on this service), its data as JSON, dom.js and `script`."""
    # '<' escaped: no stem name or customId can close the script element
    payload = json.dumps(data).replace("<", "\\u003c")
    links = "".join(f'<link rel="stylesheet" href="{html.escape(href)}">' for href in styles)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} · stembot</title>
<link rel="icon" href="data:,">
{links}</head>
<body><main id="app"></main>
<script type="application/json" id="page-data">{payload}</script>
<script src="/static/dom.js"></script><script src="/static/{script}"></script></body></html>
"""


def html_response(text: str, media: str = "") -> web.Response:
    return web.Response(text=text, content_type="text/html", headers={
        "Content-Security-Policy": policy(media), "Cache-Control": "private, no-store",
        "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY"})  # for browsers that predate frame-ancestors


@page_routes.get("/static/{name}")
async def static(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    path = STATIC / name
    if "/" in name or name.startswith(".") or not await asyncio.to_thread(path.is_file):
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Cache-Control": "no-cache",
                                           "X-Content-Type-Options": "nosniff"})


@page_routes.get("/")
async def start(request: web.Request) -> web.Response:
    """The start page: sign in (a key, or a one-click link), separate a file or a link, follow
    its stages, land on the player; the key's recent jobs. Pico CSS is its base."""
    return html_response(page("Separate a song", {}, "start.js",
                              ("/vendor/pico/pico.min.css", "/static/start.css")))
