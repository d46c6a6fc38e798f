"""Page links through yt-dlp and the guard proxy, against servers on loopback only.

The page server is reachable because its host:port is in the allow-list (as
STEMBOT_FETCH_ALLOW puts it); a second loopback server stands for a private address: it
is not allowed, and counts the requests that reach it (there must be none).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from aiohttp import web

from download.addresses import endpoints
from download.errors import DownloadError
from download.fetch import FetchLimits, session
from download.links import fetch_link, is_page, read_link
from download.pages import read_page, resolve_page
from download.proxy import GuardProxy
from download.sites import LinkRules, Track, parse_sites, site_of_url
from separation import OutputFormat, encode


@dataclass
class Site:
    """A loopback web server; `hits` lists the paths asked for, `via` whether each request
    came through the guard proxy."""

    url: str = ""
    routes: dict[str, web.Response | str] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    via: list[bool] = field(default_factory=list)


async def _start(site: Site) -> web.AppRunner:
    async def handle(request: web.Request) -> web.StreamResponse:
        site.hits.append(request.path_qs)
        site.via.append("stembot-guard" in request.headers.get("Via", ""))
        found = site.routes.get(request.path_qs) or site.routes.get(request.path)
        if found is None:
            raise web.HTTPNotFound()
        if isinstance(found, str):
            raise web.HTTPFound(found)
        return web.Response(body=found.body, status=found.status,
                            content_type=found.content_type)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    server = web.TCPSite(runner, "127.0.0.1", 0)
    await server.start()
    site.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    return runner


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Two seconds of noise, as a WAV file."""
    rng = np.random.default_rng(7)
    audio = (rng.random((2, 88200)) * 0.2 - 0.1).astype(np.float32)
    return encode(tmp_path_factory.mktemp("song") / "song.wav", audio,
                  OutputFormat.WAV).read_bytes()


@pytest_asyncio.fixture
async def sites(song: bytes) -> AsyncIterator[tuple[Site, Site]]:
    """(the allowed page server, the refused counting server)."""
    page, private = Site(), Site()
    runners = [await _start(page), await _start(private)]
    wav = web.Response(body=song, content_type="audio/wav")
    half = len(song) // 2
    page.routes.update({
        "/audio": _html('<html><head><title>Audio page</title></head><body>'
                        '<audio src="/media/a.wav"></audio></body></html>'),
        "/og": _html('<html><head><title>t</title><meta property="og:title" content="OG song">'
                     f'<meta property="og:audio" content="{page.url}/media/og.wav"></head>'
                     "<body></body></html>"),
        "/long": _html(_json_ld(page.url + "/media/long.wav", "PT2H0M0S")),
        "/playlist": _html('<html><body><audio src="/media/1.wav"></audio>'
                           '<audio src="/media/2.wav"></audio></body></html>'),
        "/evil": _html('<html><body><audio src="/hop?to=private"></audio></body></html>'),
        "/hop?to=private": private.url + "/secret.wav",
        "/moved.wav": "/media/a.wav",
        "/vod.m3u8": _hls("#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:1,\n/seg/1.ts\n#EXTINF:1,\n"
                          "/seg/2.ts\n#EXT-X-ENDLIST\n"),
        "/live.m3u8": _hls("#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:1,\n/seg/1.ts\n#EXTINF:1,\n"
                           "/seg/2.ts\n"),
        "/seg/1.ts": web.Response(body=song[:half], content_type="video/mp2t"),
        "/seg/2.ts": web.Response(body=song[half:], content_type="video/mp2t"),
    })
    for name in ("a", "og", "long", "1", "2"):
        page.routes[f"/media/{name}.wav"] = wav
    private.routes["/secret.wav"] = wav
    yield page, private
    for runner in runners:
        await runner.cleanup()


def _html(text: str) -> web.Response:
    return web.Response(text=text, content_type="text/html")


def _hls(body: str) -> web.Response:
    return web.Response(text="#EXTM3U\n#EXT-X-TARGETDURATION:1\n" + body,
                        content_type="application/vnd.apple.mpegurl")


def _json_ld(media: str, duration: str) -> str:
    data = {"@context": "https://schema.org", "@type": "VideoObject", "name": "Long one",
            "contentUrl": media, "duration": duration, "uploadDate": "2020-01-01",
            "thumbnailUrl": media + ".jpg", "author": {"@type": "Person", "name": "Someone"}}
    return ('<html><head><title>x</title><script type="application/ld+json">'
            f"{json.dumps(data)}</script></head><body></body></html>")


def limits_for(site: Site, **changes: object) -> FetchLimits:
    allowed = endpoints(site.url.removeprefix("http://"))
    return replace(FetchLimits(50_000_000, 30, 5, False, allowed), **changes)  # type: ignore[arg-type]


RULES = LinkRules(max_seconds=15 * 60)


def leftovers(folder: Path) -> list[Path]:
    return list(folder.iterdir())


async def _fetch(url: str, target: Path, limits: FetchLimits,
                 rules: LinkRules = RULES) -> Track | None:
    async with session(limits) as client:
        return await fetch_link(client, url, target, limits, rules)


async def test_a_page_with_an_audio_element(sites: tuple[Site, Site], song: bytes,
                                            tmp_path: Path) -> None:
    page, _ = sites
    track = await _fetch(page.url + "/audio", tmp_path / "in", limits_for(page))
    assert (tmp_path / "in").read_bytes() == song
    assert track is not None and track.site == "generic"
    assert "Audio page" in track.title
    assert "/media/a.wav" in page.hits
    # yt-dlp's requests all came through the guard (the first page fetch is today's path)
    assert all(page.via[page.hits.index("/media/a.wav"):])


async def test_a_page_with_og_audio(sites: tuple[Site, Site], song: bytes,
                                    tmp_path: Path) -> None:
    page, _ = sites
    track = await resolve_page(page.url + "/og", tmp_path / "in", limits_for(page), RULES)
    assert (track.site, track.title, track.uploader) == ("generic", "OG song", "")
    assert (tmp_path / "in").read_bytes() == song
    assert all(page.via)


async def test_the_metadata_alone_requests_no_media(sites: tuple[Site, Site],
                                                    tmp_path: Path) -> None:
    """read_page (the result cache's look-up) reads the page through the guard, never the
    media; a generic page's id is only its media's file name, so it names no song."""
    page, _ = sites
    track = await read_page(page.url + "/og", limits_for(page), RULES)
    assert (track.site, track.id, track.title) == ("generic", "og", "OG song")
    assert track.cache_name is None
    assert page.hits == ["/og"] and all(page.via)
    with pytest.raises(DownloadError) as failed:  # the same refusals as a download's
        await read_page(page.url + "/long", limits_for(page), RULES)
    assert failed.value.code == "AUDIO_TOO_LONG" and page.hits[-1] == "/long"
    # links of no known site are known only from their bytes: read_link reads nothing
    assert await read_link(page.url + "/og", limits_for(page), RULES) is None
    assert await read_link("https://youtu.be/x", limits_for(page),
                           LinkRules(frozenset({"generic"}))) is None
    assert page.hits.count("/og") == 1 and "/media/og.wav" not in page.hits
    assert Track("youtube", "x", "t", "", "").cache_name == "youtube:x"


async def test_an_hls_playlist_and_its_segments(sites: tuple[Site, Site], song: bytes,
                                                tmp_path: Path) -> None:
    page, _ = sites
    await _fetch(page.url + "/vod.m3u8", tmp_path / "in", limits_for(page))
    assert (tmp_path / "in").read_bytes() == song  # the segments, in order
    assert {"/seg/1.ts", "/seg/2.ts"} <= set(page.hits)
    first = page.hits.index("/seg/1.ts") - 1  # yt-dlp's own requests from the manifest on
    assert all(page.via[first:])


async def test_a_direct_file_behind_a_redirect_keeps_todays_path(
        sites: tuple[Site, Site], song: bytes, tmp_path: Path) -> None:
    page, _ = sites
    assert await _fetch(page.url + "/moved.wav", tmp_path / "in", limits_for(page)) is None
    assert (tmp_path / "in").read_bytes() == song
    assert page.hits == ["/moved.wav", "/media/a.wav"] and not any(page.via)


async def test_a_media_url_redirecting_to_a_refused_address(sites: tuple[Site, Site],
                                                             tmp_path: Path) -> None:
    page, private = sites
    with pytest.raises(DownloadError) as failed:
        await _fetch(page.url + "/evil", tmp_path / "in", limits_for(page))
    assert failed.value.code == "URL_NOT_ALLOWED"
    assert "127.0.0.1 is not a public address" in failed.value.message
    assert private.hits == []
    assert not (tmp_path / "in").exists()


async def test_two_hours_of_metadata_are_refused_before_any_media_byte(
        sites: tuple[Site, Site], tmp_path: Path) -> None:
    page, _ = sites
    with pytest.raises(DownloadError) as failed:
        await resolve_page(page.url + "/long", tmp_path / "in", limits_for(page), RULES)
    assert failed.value.code == "AUDIO_TOO_LONG"
    assert failed.value.message == "the track is 2:00:00 long; the limit is 15:00"
    assert page.hits == ["/long"]
    assert leftovers(tmp_path) == []  # nothing kept


async def test_a_live_manifest_is_refused(sites: tuple[Site, Site], tmp_path: Path) -> None:
    page, _ = sites
    with pytest.raises(DownloadError) as failed:
        await resolve_page(page.url + "/live.m3u8", tmp_path / "in", limits_for(page), RULES)
    assert failed.value.code == "LIVE_STREAM"
    assert not any(hit.startswith("/seg/") for hit in page.hits)


async def test_a_playlist_page_is_refused(sites: tuple[Site, Site], tmp_path: Path) -> None:
    page, _ = sites
    with pytest.raises(DownloadError) as failed:
        await resolve_page(page.url + "/playlist", tmp_path / "in", limits_for(page), RULES)
    assert failed.value.code == "PLAYLIST_LINK"
    assert not any(hit.startswith("/media/") for hit in page.hits)


async def test_a_file_over_the_size_limit_stops(sites: tuple[Site, Site],
                                                tmp_path: Path) -> None:
    page, _ = sites
    with pytest.raises(DownloadError) as failed:
        await resolve_page(page.url + "/og", tmp_path / "in", limits_for(page, max_bytes=1000),
                           RULES)
    assert failed.value.code == "INPUT_TOO_LARGE"
    assert leftovers(tmp_path) == []


async def test_a_page_server_not_allowed_is_refused(sites: tuple[Site, Site],
                                                    tmp_path: Path) -> None:
    page, _ = sites
    limits = FetchLimits(50_000_000, 30, 5, False)
    with pytest.raises(DownloadError) as failed:
        await resolve_page(page.url + "/og", tmp_path / "in", limits, RULES)
    assert failed.value.code == "URL_NOT_ALLOWED"
    assert page.hits == []


async def test_page_links_can_be_turned_off(sites: tuple[Site, Site], tmp_path: Path) -> None:
    page, _ = sites
    direct = LinkRules(parse_sites("direct"), 900)
    with pytest.raises(DownloadError) as failed:
        await _fetch(page.url + "/og", tmp_path / "in", limits_for(page), direct)
    assert failed.value.code == "LINK_NOT_SUPPORTED"
    assert page.hits == ["/og"]  # fetched as a file, found to be a page, refused
    with pytest.raises(DownloadError) as failed:  # refused before any connection
        await _fetch("https://youtu.be/dQw4w9WgXcQ", tmp_path / "in", limits_for(page), direct)
    assert failed.value.code == "LINK_NOT_SUPPORTED"
    assert "youtube links are not accepted here" in failed.value.message


async def test_a_download_past_its_timeout_stops_its_thread(tmp_path: Path) -> None:
    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "audio/wav"})
        await response.prepare(request)
        for _ in range(600):
            await response.write(b"\0" * 100)
            await asyncio.sleep(0.05)
        return response

    async def index(request: web.Request) -> web.Response:
        return _html('<html><body><audio src="/slow.wav"></audio></body></html>')

    app = web.Application()
    app.router.add_get("/slow.wav", trickle)
    app.router.add_get("/", index)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    slow = Site(url=f"http://127.0.0.1:{runner.addresses[0][1]}")
    try:
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(DownloadError) as failed:
            await resolve_page(slow.url + "/", tmp_path / "in", limits_for(slow, timeout=2),
                               RULES)
        assert failed.value.code == "DOWNLOAD_TIMEOUT"
        assert loop.time() - start < 10
        assert leftovers(tmp_path) == []
    finally:
        await runner.cleanup()


async def test_the_proxy_refuses_names_and_tunnels_to_private_addresses() -> None:
    async with GuardProxy(FetchLimits(0, 5, 0, False)) as proxy:
        port = int(proxy.url.rsplit(":", 1)[1])
        for request in (b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: x\r\n\r\n",
                        b"CONNECT localhost:443 HTTP/1.1\r\n\r\n",
                        b"GET http://[::1]:80/ HTTP/1.1\r\n\r\n",
                        b"GET http://169.254.169.254/latest HTTP/1.1\r\n\r\n"):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            answer = await reader.read()
            writer.close()
            assert answer.startswith(b"HTTP/1.1 403 Forbidden"), (request, answer)
        assert len(proxy.traffic.refused) == 4 and proxy.traffic.connects == []


def test_what_counts_as_a_page(tmp_path: Path) -> None:
    cases = {b"<!DOCTYPE html><html>": True, b"\n  <html lang=en>": True,
             b"#EXTM3U\n#EXT-X-VERSION:3": True, b'<?xml version="1.0"?><MPD>': True,
             b"<?xml version='1.0'?><rss>": False, b"RIFF....WAVEfmt ": False,
             b"ID3\x04\0\0\0": False, b"fLaC": False}
    for head, page in cases.items():
        (tmp_path / "f").write_bytes(head)
        assert is_page(tmp_path / "f") is page, head


def test_sites_of_links() -> None:
    assert site_of_url("https://youtu.be/abc") == "youtube"
    assert site_of_url("https://music.youtube.com/watch?v=abc") == "youtube"
    assert site_of_url("https://www.youtube.com/shorts/abc") == "youtube"
    assert site_of_url("https://on.soundcloud.com/x") == "soundcloud"
    assert site_of_url("https://artist.bandcamp.com/track/x") == "bandcamp"
    assert site_of_url("https://player.vimeo.com/video/1") == "vimeo"
    assert site_of_url("https://notyoutube.com/x") is None
    assert site_of_url("https://example.com/song.mp3") is None
    assert parse_sites("youtube, generic ,direct") == {"youtube", "generic"}
    assert parse_sites("direct") == frozenset()
    with pytest.raises(ValueError, match="unknown kind.* tiktok"):
        parse_sites("youtube,tiktok")
