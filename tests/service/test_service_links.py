"""Page links in jobs: the resolver runs for `url` inputs, with the guard on every connection
and STEMBOT_FETCH_ALLOW opening exactly one loopback server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from service_harness import serving

from download.pages import GuardedYoutubeDL
from separation.env import SettingError
from service.result_cache import CacheScope
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


SONG = "dQw4w9WgXcQ"
SHARED = (f"https://youtu.be/{SONG}", f"https://www.youtube.com/watch?v={SONG}",
          f"https://www.youtube.com/watch?v={SONG}&t=42")


def fake_youtube(monkeypatch: pytest.MonkeyPatch, media: str) -> list[str]:
    """YouTube's extractor cannot run offline: its metadata step is replaced by what it would
    return, the video's id from yt-dlp's own URL pattern for YouTube links and one audio format
    at `media` (a loopback file, downloaded through the guard like any site's); returns the
    links whose metadata was read."""
    from yt_dlp.extractor.youtube import YoutubeIE

    read: list[str] = []

    def extract_info(self: GuardedYoutubeDL, url: str, download: bool = True,
                     process: bool = True, **_: Any) -> dict[str, Any]:
        assert not download and not process  # the metadata only, as pages.py asks
        read.append(url)
        video = YoutubeIE.get_temp_id(url)
        assert video is not None, url
        return {"id": video, "title": "Never Gonna Give You Up", "uploader": "Rick Astley",
                "extractor": "youtube", "extractor_key": "Youtube", "duration": 5,
                "webpage_url": f"https://www.youtube.com/watch?v={video}",
                "original_url": url, "webpage_url_basename": "watch",
                "formats": [{"format_id": "251", "url": media, "ext": "wav",
                             "acodec": "pcm", "vcodec": "none", "protocol": "http"}]}

    monkeypatch.setattr(GuardedYoutubeDL, "extract_info", extract_info)
    return read


async def test_a_song_shared_as_three_links_is_one_cache_entry(
        tmp_path: Path, servers: tuple[Server, Server], monkeypatch: pytest.MonkeyPatch
        ) -> None:
    """youtu.be, the full link and the link with `&t=42` name one video: the second and third
    jobs read the metadata, find the stems by `youtube:<id>` and download nothing."""
    page, _ = servers
    read = fake_youtube(monkeypatch, page.url + "/clip.wav")
    allowed = (page.url.removeprefix("http://"),)
    async with serving(tmp_path / "data", allow_private_networks=False, fetch_allow=allowed,
                       result_cache=CacheScope.OWNER) as running:
        done = []
        for url in SHARED:
            job = await running.api.create([{"url": url}])
            done.append(await running.api.wait(job["id"], within=120))
    assert [job["state"] for job in done] == [3, 3, 3], done
    hits = [[r.get("fromCache", False) for r in job["outputs"][0]["smartContentResult"][
        "musicSeperate"]] for job in done]
    assert hits == [[False, False], [True, True], [True, True]]
    assert page.hits.count("/clip.wav") == 1  # the media, once: for the first job only
    assert read == [SHARED[0], SHARED[0], SHARED[1], SHARED[2]]  # a miss reads it again
    for url, job in zip(SHARED, done, strict=True):
        assert job["inputs"] == [{"url": url, "track": {
            "site": "youtube", "id": SONG, "title": "Never Gonna Give You Up",
            "uploader": "Rick Astley", "page": f"https://www.youtube.com/watch?v={SONG}"}}]


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
