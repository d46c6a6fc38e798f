"""The service is no door into its network; paths stay inside their repository."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from service_harness import Api, Origin, Running, basic_header, make_settings, new_key

from service.app import start_service
from service.errors import JobFailure
from service.fetch import FetchLimits, download, session

LIMITS = FetchLimits(max_bytes=10_000_000, timeout=5, max_redirects=2, allow_private=True)


@pytest_asyncio.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[Api]:
    """A service on the default setting: private networks refused."""
    settings = make_settings(tmp_path / "data", allow_private_networks=False,
                             allow_private_callbacks=False)
    key = await new_key(settings)
    service = await start_service(settings)
    async with aiohttp.ClientSession() as client:
        yield Api(client, service.url, key)
    await service.stop()


@pytest.mark.parametrize("host", [
    "127.0.0.1", "localhost", "10.1.2.3", "192.168.0.1", "169.254.169.254", "[::1]",
    "[::ffff:127.0.0.1]", "0.0.0.0",
])
async def test_private_addresses_refused(guarded: Api, host: str) -> None:
    request = {"inputs": [{"url": f"http://{host}:8080/clip.wav"}], "outputs": [
        {"inputSelectors": [0], "smartContentDescriptor": {"musicSeperate": {"method": 1}}}]}
    status, body = await guarded.call("CreateJob", request)
    assert (status, body["error"]["code"]) == (400, "URL_NOT_ALLOWED"), body
    assert (await guarded.ok("ListJobs", {"customId": ""}))["total"] == 0


async def test_private_callback_refused(guarded: Api) -> None:
    request = {"callback": "http://127.0.0.1:9/hook",
               "inputs": [{"url": "http://93.184.215.14/clip.wav"}], "outputs": [
        {"inputSelectors": [0], "smartContentDescriptor": {"musicSeperate": {"method": 1}}}]}
    status, body = await guarded.call("CreateJob", request)
    assert (status, body["error"]["code"]) == (400, "URL_NOT_ALLOWED"), body
    assert "callback" in body["error"]["message"]


async def test_download_guard_refuses_at_connect(origin: Origin, tmp_path: Path) -> None:
    """A name resolving to loopback is refused by the resolver itself (no rebinding gap)."""
    limits = FetchLimits(10_000_000, 5, 2, allow_private=False)
    port = origin.url.rsplit(":", 1)[1]
    async with session(limits) as client:
        with pytest.raises(JobFailure) as failure:
            await download(client, f"http://localhost:{port}/files/clip.wav",
                           tmp_path / "x", limits)
    assert failure.value.code == "URL_NOT_ALLOWED"


async def test_download_limits(origin: Origin, tmp_path: Path) -> None:
    async with session(LIMITS) as client:
        size = await download(client, origin.url + "/redirect/1", tmp_path / "ok", LIMITS)
        assert size == len(origin.files["clip.wav"])
        cases = [
            (origin.url + "/redirect/2", LIMITS, "DOWNLOAD_FAILED"),
            (origin.url + "/files/clip.wav", FetchLimits(1000, 5, 2, True), "INPUT_TOO_LARGE"),
            (origin.url + "/slow?s=5", FetchLimits(1000, 0.3, 2, True), "DOWNLOAD_TIMEOUT"),
            (origin.url + "/files/missing", LIMITS, "DOWNLOAD_FAILED"),
        ]
        for url, limits, code in cases:
            with pytest.raises(JobFailure) as failure:
                await download(client, url, tmp_path / "x", limits)
            assert failure.value.code == code, url


@pytest.mark.parametrize("path", [
    "a/../../etc/passwd", "%2e%2e/secret", "a/%2e%2e/%2e%2e/x", "/etc/passwd", "a//b",
    "a/./b", "a\\..\\b",
])
async def test_path_traversal_refused(running: Running, path: str) -> None:
    headers, mine = basic_header(running.api.key), running.api.key.default_content
    for method in ("PUT", "GET"):
        status, body = await running.api.raw(method, f"/content/{mine}/{path}", data=b"x",
                                             headers=headers)
        assert status in (400, 404), (method, path, status)
        assert body["error"]["code"] in ("INVALID_PARAMETER", "NOT_FOUND")
    outside = running.settings.data_dir.parent
    assert not any(outside.glob("**/passwd")) and not any(outside.glob("**/secret"))


async def test_symlink_out_of_repository_refused(running: Running, tmp_path: Path) -> None:
    headers, mine = basic_header(running.api.key), running.api.key.default_content
    status, _ = await running.api.raw("PUT", f"/content/{mine}/a.txt", data=b"x",
                                      headers=headers)
    assert status == 201
    secret = tmp_path / "outside.txt"
    secret.write_text("secret")
    (running.settings.content_dir / mine / "link.txt").symlink_to(secret)
    status, body = await running.api.raw("GET", f"/content/{mine}/link.txt", headers=headers)
    assert (status, body["error"]["code"]) == (400, "INVALID_PARAMETER")
    status, body = await running.api.raw("GET", f"/content/{mine}/a.txt", headers={})
    assert (status, body["error"]["code"]) == (401, "AUTH_FAILED")


async def test_upload_size_limit(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", max_bytes=1000)
    key = await new_key(settings)
    service = await start_service(settings)
    try:
        async with aiohttp.ClientSession() as client:
            api = Api(client, service.url, key)
            mine = key.default_content
            status, body = await api.raw("PUT", f"/content/{mine}/big.wav", data=b"x" * 5000,
                                         headers=basic_header(key))
            assert (status, body["error"]["code"]) == (413, "PAYLOAD_TOO_LARGE")
            assert not list((settings.content_dir / mine).iterdir())
    finally:
        await service.stop()
