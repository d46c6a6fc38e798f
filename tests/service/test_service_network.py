"""The service is no door into its network; paths stay inside their repository."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from service_harness import Api, Origin, Running, basic_header, make_settings, new_key

from download.errors import DownloadError
from download.fetch import FetchLimits, download, session
from separation.env import SettingError
from service.app import start_service
from service.settings import ServiceSettings

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


async def test_ipv6_carrying_a_private_ipv4_is_refused(guarded: Api) -> None:
    """NAT64, 6to4, Teredo and IPv4-compatible addresses are judged by the IPv4 inside."""
    embedded = {
        "64:ff9b::7f00:1": "NAT64 of 127.0.0.1", "64:ff9b::a00:1": "NAT64 of 10.0.0.1",
        "64:ff9b:1::a9fe:a9fe": "local-use NAT64 of 169.254.169.254",
        "2002:7f00:1::1": "6to4 of 127.0.0.1", "2002:c0a8:1::1": "6to4 of 192.168.0.1",
        "2001:0:4136:e378:8000:63bf:80ff:fffe": "Teredo, client 127.0.0.1",
        "::7f00:1": "IPv4-compatible 127.0.0.1",
    }
    for address, what in embedded.items():
        for field, value in (("inputs[0].url", f"http://[{address}]:8080/clip.wav"),
                             ("callback", f"http://[{address}]:8081/hook")):
            url, hook = (value, "") if field == "inputs[0].url" else (
                "http://93.184.215.14/clip.wav", value)
            request = {"callback": hook, "inputs": [{"url": url}], "outputs": [
                {"inputSelectors": [0],
                 "smartContentDescriptor": {"musicSeperate": {"method": 1}}}]}
            status, body = await guarded.call("CreateJob", request)
            assert (status, body["error"]["code"]) == (400, "URL_NOT_ALLOWED"), (what, field)
    assert (await guarded.ok("ListJobs", {"customId": ""}))["total"] == 0
    # the same forms carrying a public IPv4 are public
    for public in ("64:ff9b::5db8:d70e", "2002:5db8:d70e::1"):
        await guarded.create([{"url": f"http://[{public}]/clip.wav"}])


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
        with pytest.raises(DownloadError) as failure:
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
            with pytest.raises(DownloadError) as failure:
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


async def test_callback_allow_list_is_exact(tmp_path: Path, origin: Origin,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """STEMBOT_CALLBACK_ALLOW opens exactly the listed host:port pairs, by IP or by name."""
    port = int(origin.url.rsplit(":", 1)[1])
    monkeypatch.setenv("STEMBOT_CALLBACK_ALLOW", f"127.0.0.1:{port}, LOCALHOST:{port}")
    allowed = ServiceSettings.from_env().callback_allow
    settings = make_settings(tmp_path / "data", allow_private_callbacks=False,
                             callback_allow=allowed)
    key = await new_key(settings)
    service = await start_service(settings)
    try:
        async with aiohttp.ClientSession() as client:
            api = Api(client, service.url, key)
            for host in ("127.0.0.1", "localhost"):
                job = await api.create([{"url": origin.url + "/files/missing.wav"}],
                                       callback=f"http://{host}:{port}/callback")
                body, _ = await origin.wait_callback(job["id"], within=10)
                assert json.loads(body)["errorCode"] == "DOWNLOAD_FAILED"
            for hook in (f"http://127.0.0.1:{port + 1}/callback", f"http://127.0.0.2:{port}/"):
                status, body = await api.call("CreateJob", {"callback": hook, "inputs": [
                    {"url": origin.url + "/files/missing.wav"}], "outputs": [{
                        "inputSelectors": [0],
                        "smartContentDescriptor": {"musicSeperate": {"method": 1}}}]})
                assert (status, body["error"]["code"]) == (400, "URL_NOT_ALLOWED"), hook
    finally:
        await service.stop()
    monkeypatch.setenv("STEMBOT_CALLBACK_ALLOW", "127.0.0.1")
    with pytest.raises(SettingError, match="STEMBOT_CALLBACK_ALLOW: '127.0.0.1' is not host:port"):
        ServiceSettings.from_env()
