"""The pages' npm packages, served by the service from web/node_modules (scripts/setup)."""

from __future__ import annotations

import pytest
import yarl
from service_harness import Running


@pytest.mark.parametrize(("path", "kind"), [
    ("/vendor/pico/pico.min.css", "text/css"),
    ("/vendor/soundtouch/soundtouch-processor.js", "text/javascript"),
    ("/vendor/soundtouch/SoundTouchNode.js", "text/javascript"),
])
async def test_the_pages_packages_are_served(running: Running, path: str, kind: str) -> None:
    async with running.api.client.get(running.service.url + path) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"] == kind
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert len(await answer.read()) > 1000


@pytest.mark.parametrize("path", [
    "/vendor/pico/../package.json", "/vendor/pico/%2E%2E%2Fpackage.json", "/vendor/other/x.js",
    "/vendor/pico/pico.min.css.map", "/vendor/pico/.hidden.css", "/vendor/soundtouch/nope.js",
])
async def test_nothing_else_is(running: Running, path: str) -> None:
    url = yarl.URL(running.service.url + path, encoded=True)  # '..' goes out as written
    async with running.api.client.get(url) as answer:
        assert answer.status == 404
