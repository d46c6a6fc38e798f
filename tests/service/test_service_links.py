"""Page links in jobs: the resolver runs for `url` inputs, with the guard on every connection
and STEMBOT_FETCH_ALLOW opening exactly one loopback server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from service_harness import serving

from separation.env import SettingError
from service.settings import ServiceSettings


class Server:
    def __init__(self) -> None:
        self.url = ""
        self.hits: list[str] = []
        self.routes: dict[str, web.Response | str] = {}

    async def start(self) -> web.AppRunner:
        async def handle(request: web.Request) -> web.StreamResponse:
            self.hits.append(request.path_qs)
            found = self.routes.get(request.path_qs)
            if found is None:
                raise web.HTTPNotFound()
            if isinstance(found, str):
                raise web.HTTPFound(found)
            return web.Response(body=found.body, content_type=found.content_type)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        return runner


@pytest_asyncio.fixture
async def servers(short_wav: Path) -> AsyncIterator[tuple[Server, Server]]:
    page, private = Server(), Server()
    runners = [await page.start(), await private.start()]
    song = await asyncio.to_thread(short_wav.read_bytes)
    page.routes.update({
        "/song": web.Response(text='<html><head><meta property="og:title" content="Tune">'
                          '<meta property="og:audio" content="/clip.wav"></head></html>',
                          content_type="text/html"),
        "/clip.wav": web.Response(body=song, content_type="audio/wav"),
        "/evil": web.Response(text='<html><body><audio src="/hop"></audio></body></html>',
                              content_type="text/html"),
        "/hop": private.url + "/clip.wav",
    })
    private.routes["/clip.wav"] = web.Response(body=song, content_type="audio/wav")
    yield page, private
    for runner in runners:
        await runner.cleanup()


async def test_a_page_whose_media_redirects_to_a_refused_address(
        tmp_path: Path, servers: tuple[Server, Server]) -> None:
    page, private = servers
    allowed = (page.url.removeprefix("http://"),)
    async with serving(tmp_path / "data", allow_private_networks=False,
                       fetch_allow=allowed) as running:
        job = await running.api.create([{"url": page.url + "/evil"}])
        done = await running.api.wait(job["id"], within=30)
    assert (done["state"], done["errorCode"]) == (4, "URL_NOT_ALLOWED"), done
    assert "127.0.0.1 is not a public address" in done["errorMessage"]
    assert private.hits == []


async def test_a_page_link_is_separated(tmp_path: Path,
                                        servers: tuple[Server, Server]) -> None:
    page, _ = servers
    allowed = (page.url.removeprefix("http://"),)
    async with serving(tmp_path / "data", allow_private_networks=False,
                       fetch_allow=allowed) as running:
        job = await running.api.create([{"url": page.url + "/song"}])
        done = await running.api.wait(job["id"], within=120)
    assert done["state"] == 3, done
    assert "/clip.wav" in page.hits
    # the track's facts travel with the job, on its input (an extension field)
    assert done["inputs"] == [{"url": page.url + "/song", "track": {
        "site": "generic", "id": "clip", "title": "Tune", "uploader": "",
        "page": page.url + "/song"}}]


def test_link_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEMBOT_FETCH_ALLOW", "127.0.0.1:9000, [::1]:80")
    monkeypatch.setenv("STEMBOT_LINK_SITES", "direct")
    settings = ServiceSettings.from_env()
    assert settings.input_limits.allow == {("127.0.0.1", 9000), ("::1", 80)}
    assert settings.link_rules.sites == frozenset()
    monkeypatch.delenv("STEMBOT_LINK_SITES")
    assert ServiceSettings.from_env().link_rules.sites == {
        "youtube", "soundcloud", "bandcamp", "vimeo", "generic"}
    monkeypatch.setenv("STEMBOT_FETCH_ALLOW", "127.0.0.1")
    with pytest.raises(SettingError, match="STEMBOT_FETCH_ALLOW: '127.0.0.1' is not host:port"):
        ServiceSettings.from_env()
    monkeypatch.setenv("STEMBOT_FETCH_ALLOW", "")
    monkeypatch.setenv("STEMBOT_LINK_SITES", "youtube,myspace")
    with pytest.raises(SettingError, match="STEMBOT_LINK_SITES: unknown kind.*myspace"):
        ServiceSettings.from_env()
