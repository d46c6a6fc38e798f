"""One contract for every Blobs implementation: the local folder and S3 (a real SeaweedFS)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from separation.env import SettingError
from service.blobs import Blobs, Kind, LocalBlobs, patiently
from service.blobs_s3 import S3Blobs, make_client
from service.errors import ContentNotFound, PayloadTooLarge, StartupError, StorageUnavailable
from service.settings import ServiceSettings, s3_location
from support.seaweed import SeaweedFS, free_port


def s3_blobs(seaweed: SeaweedFS, url: str, scratch: Path, **changes: Any) -> S3Blobs:
    settings = ServiceSettings(data_dir=scratch.parent, **{**seaweed.settings(url), **changes})
    bucket, prefix = s3_location(url)
    return S3Blobs(make_client(settings), bucket, prefix, scratch)


@pytest.fixture(params=["local", "s3"])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Blobs, Blobs]]:
    """Two stores side by side: two folders, or two PREFIXes of one bucket."""
    if request.param == "local":
        yield LocalBlobs(tmp_path / "one"), LocalBlobs(tmp_path / "two")
        return
    seaweed: SeaweedFS = request.getfixturevalue("seaweed")
    bucket = f"contract-{secrets.token_hex(6)}"
    seaweed.create_bucket(bucket)
    yield (s3_blobs(seaweed, f"s3://{bucket}/one", tmp_path / "scratch"),
           s3_blobs(seaweed, f"s3://{bucket}/one-two/deeper", tmp_path / "scratch"))


@pytest.fixture
def blobs(pair: tuple[Blobs, Blobs]) -> Blobs:
    return pair[0]


async def stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def read(blobs: Blobs, key: str, tmp_path: Path) -> bytes:
    path = await blobs.local_copy(key, tmp_path / f"copy-{secrets.token_hex(4)}")
    return await asyncio.to_thread(path.read_bytes)


async def test_put_stream_size_kind_and_copy(blobs: Blobs, tmp_path: Path) -> None:
    assert await blobs.put_stream("r1/a/b.wav", stream(b"abc", b"", b"def"), 100) == 6
    assert await blobs.size("r1/a/b.wav") == 6
    assert await blobs.kind("r1/a/b.wav") is Kind.FILE
    assert await blobs.kind("r1/a") is Kind.FOLDER
    assert await blobs.kind("r1") is Kind.FOLDER
    assert await blobs.kind("r1/a/b") is Kind.NOTHING
    assert await blobs.kind("r1/a/b.wav/c") is Kind.NOTHING
    assert await read(blobs, "r1/a/b.wav", tmp_path) == b"abcdef"
    # a replacement is whole, with its own size
    assert await blobs.put_stream("r1/a/b.wav", stream(b"xy"), 100) == 2
    assert await blobs.size("r1/a/b.wav") == 2
    assert await read(blobs, "r1/a/b.wav", tmp_path) == b"xy"
    assert await blobs.put_stream("r1/empty", stream(), 100) == 0
    assert await blobs.size("r1/empty") == 0


async def test_the_byte_limit_stores_nothing(blobs: Blobs, tmp_path: Path) -> None:
    with pytest.raises(PayloadTooLarge, match="over the 5 byte limit"):
        await blobs.put_stream("r1/big", stream(b"abc", b"def"), 5)
    assert await blobs.size("r1/big") is None
    assert await blobs.total(["r1"]) == 0
    assert await blobs.put_stream("r1/fits", stream(b"abcde"), 5) == 5


async def test_a_failing_upload_leaves_the_old_file(blobs: Blobs, tmp_path: Path) -> None:
    await blobs.put_stream("r1/song.wav", stream(b"old"), 100)

    async def broken() -> AsyncIterator[bytes]:
        yield b"new"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await blobs.put_stream("r1/song.wav", broken(), 100)
    assert await read(blobs, "r1/song.wav", tmp_path) == b"old"
    assert await blobs.total(["r1"]) == 3  # no part file counts


async def test_put_file_and_missing_files(blobs: Blobs, tmp_path: Path) -> None:
    source = tmp_path / "stem.wav"
    source.write_bytes(b"stem bytes")
    await blobs.put_file("r1/out/job-vocals.wav", source)
    assert await blobs.size("r1/out/job-vocals.wav") == 10
    assert await read(blobs, "r1/out/job-vocals.wav", tmp_path) == b"stem bytes"
    with pytest.raises(ContentNotFound):
        await blobs.local_copy("r1/out/nothing.wav", tmp_path / "x")
    with pytest.raises(ContentNotFound):
        await blobs.local_copy("r1/out", tmp_path / "y")  # a folder is not a file
    assert await blobs.size("r1/out") is None
    assert await blobs.size("r2/none") is None


async def test_delete(blobs: Blobs) -> None:
    await blobs.put_stream("r1/d/a", stream(b"1"), 10)
    await blobs.put_stream("r1/d/b", stream(b"2"), 10)
    assert await blobs.delete("r1/d/a") is True
    assert await blobs.delete("r1/d/a") is False
    assert await blobs.delete("r1/d") is False  # a folder is not removed as a file
    assert await blobs.delete("r9/none") is False
    assert await blobs.size("r1/d/a") is None
    assert await blobs.size("r1/d/b") == 1


async def test_names_are_one_folder_deep(blobs: Blobs) -> None:
    for key in ("r1/out/job1-0-vocals.wav", "r1/out/job1-0-drums.wav", "r1/out/job2-0-x.wav",
                "r1/out/job1-sub/inner.wav", "r1/job1-top.wav", "r1/outer/job1-z.wav"):
        await blobs.put_stream(key, stream(b"x"), 10)
    assert await blobs.names("r1/out", "job1-") == ["job1-0-drums.wav", "job1-0-vocals.wav"]
    assert await blobs.names("r1", "job1-") == ["job1-top.wav"]
    assert await blobs.names("r1/none", "job1-") == []


async def test_totals_keep_repositories_apart(blobs: Blobs) -> None:
    await blobs.put_stream("r1/a", stream(b"12345"), 100)
    await blobs.put_stream("r1/deep/er/b", stream(b"123"), 100)
    await blobs.put_stream("r10/c", stream(b"1234567"), 100)  # r1 is a prefix of its name
    assert await blobs.total(["r1"]) == 8
    assert await blobs.total(["r10"]) == 7
    assert await blobs.total(["r1", "r10"]) == 15
    assert await blobs.total([]) == 0
    assert await blobs.total(["unknown"]) == 0


async def test_two_stores_do_not_see_each_other(pair: tuple[Blobs, Blobs], tmp_path: Path
                                                ) -> None:
    one, two = pair
    await one.put_stream("r1/a.wav", stream(b"one"), 10)
    assert await two.size("r1/a.wav") is None
    assert await two.kind("r1") is Kind.NOTHING
    assert await two.total(["r1"]) == 0
    assert await two.names("r1", "") == []
    assert await two.delete("r1/a.wav") is False
    await two.put_stream("r1/a.wav", stream(b"two!"), 10)
    assert await read(one, "r1/a.wav", tmp_path) == b"one"
    assert await read(two, "r1/a.wav", tmp_path) == b"two!"
    assert await one.total(["r1"]) == 3


async def test_http_answers_and_ranges(blobs: Blobs) -> None:
    """Whole file, byte ranges and an unsatisfiable range, the same from every store."""
    await blobs.put_stream("r1/clip.wav", stream(bytes(range(10))), 100)

    async def handler(request: web.Request) -> web.StreamResponse:
        return await blobs.response("r1/clip.wav", request, {"Cache-Control": "no-store",
                                                             "Content-Type": "audio/wav"})

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
    try:
        async with aiohttp.ClientSession() as client:
            async def get(range_: str | None) -> tuple[int, bytes, Any]:
                headers = {"Range": range_} if range_ else {}
                async with client.get(url, headers=headers) as answer:
                    return answer.status, await answer.read(), answer.headers

            status, body, headers = await get(None)
            assert (status, body) == (200, bytes(range(10)))
            assert headers["Content-Type"] == "audio/wav"  # as the caller named it
            assert headers["Cache-Control"] == "no-store"
            assert headers["Content-Length"] == "10"
            status, body, headers = await get("bytes=2-4")
            assert (status, body) == (206, bytes([2, 3, 4]))
            assert headers["Content-Range"] == "bytes 2-4/10"
            assert (await get("bytes=-3"))[:2] == (206, bytes([7, 8, 9]))
            assert (await get("bytes=8-"))[:2] == (206, bytes([8, 9]))
            assert (await get("bytes=5-100"))[:2] == (206, bytes(range(5, 10)))
            status, _, headers = await get("bytes=20-30")
            assert status == 416 and headers["Content-Range"] == "bytes */10"
            async with client.head(url) as answer:
                assert answer.status == 200 and answer.headers["Content-Length"] == "10"
    finally:
        await runner.cleanup()


# --- S3 only: settings, start-up checks, outages ---------------------------------------


@pytest.mark.parametrize(("url", "says"), [
    ("http://bucket/x", "s3://BUCKET[/PREFIX]"),
    ("s3://", "not an S3 bucket name"),
    ("s3://Upper_Case", "not an S3 bucket name"),
    ("s3://ok-bucket//double", "empty, '.' or '..' segment"),
    ("s3://ok-bucket/a/../b", "empty, '.' or '..' segment"),
])
def test_bad_storage_urls_are_one_clear_line(monkeypatch: pytest.MonkeyPatch, url: str,
                                             says: str) -> None:
    monkeypatch.setenv("STEMBOT_STORAGE_URL", url)
    with pytest.raises(SettingError, match="STEMBOT_STORAGE_URL") as raised:
        ServiceSettings.from_env()
    assert says in str(raised.value) and "\n" not in str(raised.value)


def test_storage_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEMBOT_STORAGE_URL", "s3://stems.example/prod/")
    monkeypatch.setenv("STEMBOT_S3_ENDPOINT_URL", "http://10.0.0.5:8333/")
    monkeypatch.setenv("STEMBOT_S3_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret")
    settings = ServiceSettings.from_env()
    assert s3_location(settings.storage_url) == ("stems.example", "prod")
    assert (settings.s3_endpoint_url, settings.s3_region) == ("http://10.0.0.5:8333",
                                                              "eu-west-1")
    assert "very-secret" not in repr(settings)
    monkeypatch.setenv("STEMBOT_S3_ENDPOINT_URL", "10.0.0.5:8333")
    with pytest.raises(SettingError, match="STEMBOT_S3_ENDPOINT_URL must be an http"):
        ServiceSettings.from_env()
    monkeypatch.delenv("STEMBOT_STORAGE_URL")
    monkeypatch.delenv("STEMBOT_S3_ENDPOINT_URL")
    assert ServiceSettings.from_env().storage_url == ""  # the local folder, as before


async def test_start_up_checks_name_the_problem(seaweed: SeaweedFS, tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="'no-such-bucket' does not exist"):
        await s3_blobs(seaweed, "s3://no-such-bucket", tmp_path / "s").check()
    bucket = f"check-{secrets.token_hex(4)}"
    seaweed.create_bucket(bucket)
    wrong = s3_blobs(seaweed, f"s3://{bucket}", tmp_path / "s", s3_secret_key="wrong")
    with pytest.raises(StartupError, match="refused these credentials") as raised:
        await wrong.check()
    assert "wrong" not in str(raised.value)
    await s3_blobs(seaweed, f"s3://{bucket}", tmp_path / "s").check()
    closed = s3_blobs(seaweed, f"s3://{bucket}", tmp_path / "s", s3_timeout=1,
                      s3_endpoint_url=f"http://127.0.0.1:{free_port('127.0.0.1')}")
    with pytest.raises(StartupError, match="could not be reached"):
        await closed.check()


async def test_an_unreachable_store_is_unavailable(seaweed: SeaweedFS, tmp_path: Path
                                                   ) -> None:
    """Nothing listening: StorageUnavailable after botocore's retries, and `patiently` keeps
    trying for its window only."""
    closed = s3_blobs(seaweed, "s3://any-bucket", tmp_path / "s", s3_timeout=1,
                      s3_endpoint_url=f"http://127.0.0.1:{free_port('127.0.0.1')}")
    for call in (closed.size("r1/a"), closed.kind("r1/a"), closed.total(["r1"]),
                 closed.put_stream("r1/a", stream(b"x"), 10)):
        with pytest.raises(StorageUnavailable, match="could not be reached"):
            await call
    assert not list((tmp_path / "s").iterdir())  # the spooled upload is gone
    started = asyncio.get_running_loop().time()
    with pytest.raises(StorageUnavailable):
        await patiently(2.0, lambda: closed.size("r1/a"))
    assert 1.0 < asyncio.get_running_loop().time() - started < 10
