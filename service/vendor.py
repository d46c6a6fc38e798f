"""Front-end packages from npm (`web/package.json`, installed by scripts/setup), served by the
service itself under /vendor/: the pages load nothing from anywhere else."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from aiohttp import web

NODE_MODULES = Path(__file__).resolve().parents[1] / "web" / "node_modules"
# /vendor/<name>/<file>: the folder of each package whose files the pages may load
PACKAGES = {
    "pico": NODE_MODULES / "@picocss" / "pico" / "css",
    "soundtouch": NODE_MODULES / "@soundtouchjs" / "audio-worklet" / ".dist",
}
TYPES = {".js": "text/javascript", ".css": "text/css"}
_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
vendor_routes = web.RouteTableDef()


@vendor_routes.get("/vendor/{package}/{name}")
async def vendor(request: web.Request) -> web.FileResponse:
    folder = PACKAGES.get(request.match_info["package"])
    name = request.match_info["name"]
    kind = TYPES.get(Path(name).suffix)
    if folder is None or kind is None or not _FILE.fullmatch(name):
        raise web.HTTPNotFound()
    path = folder / name
    if not await asyncio.to_thread(path.is_file):
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Content-Type": kind, "Cache-Control": "no-cache",
                                           "X-Content-Type-Options": "nosniff"})
