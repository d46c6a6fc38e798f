"""The job API client and the input probe, against a small stand-in server and the real service."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.jobapi import ApiError, JobApi, ServiceUnreachableError, StemFile
from bot.probe import InputFetcher
from support.discord_bot import TEST_LIMITS, Service, read_bytes
from wire.enums import Tone
from wire.jobs import InputSpec


class Stub:
    """Answers the job endpoint with a set status; serves files under /files/."""

    def __init__(self) -> None:
        self.status = 200
        self.body: dict[str, Any] = {}
        self.files: dict[str, tuple[bytes, str]] = {}
        self.url = ""

    async def job(self, request: web.Request) -> web.Response:
        return web.json_response(self.body, status=self.status)

    async def file(self, request: web.Request) -> web.Response:
        data, kind = self.files[request.match_info["name"]]
        return web.Response(body=data, content_type=kind)


@pytest.fixture
async def stub() -> AsyncIterator[Stub]:
    served = Stub()
    app = web.Application()
    app.router.add_post("/release/job", served.job)
    app.router.add_get("/files/{name}", served.file)
    app.router.add_get("/content/{cid}/{name}", served.file)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    served.url = f"http://127.0.0.1:{port}"
    yield served
    await runner.cleanup()


@pytest.fixture
async def api(stub: Stub) -> AsyncIterator[JobApi]:
    async with aiohttp.ClientSession() as session:
        yield JobApi(session, stub.url + "/release/job", "id", "key")


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
async def test_server_errors_are_retried_not_final(stub: Stub, api: JobApi,
                                                    status: int) -> None:
    """A proxy's 502 while the service restarts must not fail the jobs being followed."""
    stub.status = status
    with pytest.raises(ServiceUnreachableError, match=f"HTTP {status}"):
        await api.get_job("job-1")


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_client_errors_stay_final(stub: Stub, api: JobApi, status: int) -> None:
    stub.status = status
    stub.body = {"error": {"code": "NOT_FOUND", "message": "no such job"}}
    with pytest.raises(ApiError) as raised:
        await api.get_job("job-1")
    assert not isinstance(raised.value, ServiceUnreachableError)
    assert str(raised.value) == "no such job" and raised.value.status == status


class Spy:
    """Records on which thread files are opened, written and closed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.loop_thread = threading.get_ident()
        self.calls: list[tuple[str, bool]] = []
        real_open = Path.open
        spy = self

        class File:
            def __init__(self, handle: Any) -> None:
                self._handle = handle

            def write(self, data: bytes) -> int:
                spy.note("write")
                return int(self._handle.write(data))

            def read(self, size: int = -1) -> bytes:
                spy.note("read")
                return bytes(self._handle.read(size))

            def close(self) -> None:
                spy.note("close")
                self._handle.close()

            def __enter__(self) -> File:
                return self

            def __exit__(self, *exc: object) -> None:
                self.close()

        def opened(path: Path, *args: Any, **kwargs: Any) -> Any:
            spy.note("open")
            return File(real_open(path, *args, **kwargs))

        monkeypatch.setattr(Path, "open", opened)

    def note(self, what: str) -> None:
        self.calls.append((what, threading.get_ident() == self.loop_thread))

    def on_the_loop(self) -> list[str]:
        return [what for what, on_loop in self.calls if on_loop]


async def test_downloads_write_files_off_the_event_loop(
    stub: Stub, api: JobApi, demo_wav: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`stembot up` shares its loop with the job service: no file I/O may block it."""
    song = read_bytes(demo_wav)
    stub.files["song.wav"] = (song, "audio/wav")
    stub.files["vocals.wav"] = (b"stem" * 50_000, "audio/wav")
    work = tmp_path / "work"
    work.mkdir()
    spy = Spy(monkeypatch)

    fetcher = InputFetcher(allow_private=True)
    try:
        async with fetcher.checked(stub.url + "/files/song.wav", TEST_LIMITS, work) as probe:
            assert probe.path.stat().st_size == len(song)  # kept until the block ends
    finally:
        await fetcher.close()
    assert probe.size == len(song) and 6 < probe.seconds < 8
    assert list(work.iterdir()) == []  # the download is deleted

    stem = StemFile(Tone.VOCALS, content_id="c1", destination="/", file_name="vocals.wav")
    target = await api.download(stem, work / "vocals.wav", max_bytes=1 << 20)
    assert target.stat().st_size == 200_000

    assert {what for what, _ in spy.calls} == {"open", "write", "close"}
    assert spy.on_the_loop() == []


async def test_uploads_read_files_off_the_event_loop(
    service: Service, demo_wav: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The checked input goes to the service streamed, its reads off the event loop."""
    song = read_bytes(demo_wav)
    source = InputSpec(content_id=service.content_id, path="inputs/7/song.wav")
    async with aiohttp.ClientSession() as session:
        api = JobApi(session, service.url + "/release/job", service.secret_id,
                     service.secret_key, service.content_id)
        spy = Spy(monkeypatch)
        await api.upload(source, demo_wav)
        monkeypatch.undo()
        stem = StemFile(Tone.VOCALS, service.content_id, "/inputs/7", "song.wav")
        back = await api.download(stem, tmp_path / "back.wav", max_bytes=len(song))
    assert back.read_bytes() == song
    assert "read" in {what for what, _ in spy.calls}
    assert spy.on_the_loop() == []


def test_the_api_client_loads_no_engine() -> None:
    """The bot's job-API client speaks the protocol only: no numpy, PyAV or inference runtime."""
    code = ("import sys, bot.jobapi; heavy = ('numpy', 'av', 'onnx', 'onnxruntime', 'openvino');"
            " print(','.join(m for m in heavy if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "", f"importing bot.jobapi loaded {loaded}"
