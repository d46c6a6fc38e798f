"""Blobs in an S3 bucket (AWS, SeaweedFS, MinIO...) under an optional key prefix.

boto3 is blocking: every call runs in a thread. botocore retries a failed request a few
times (its standard mode: connection errors, throttling, 5xx); what still fails is
StorageUnavailable, a 503 to API callers, which a job retries for STEMBOT_S3_RETRY_SECONDS.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
import botocore.config
import botocore.exceptions
from aiohttp import web
from boto3.exceptions import S3UploadFailedError

from service.blobs import Kind, write_chunks
from service.errors import ContentNotFound, StartupError, StorageUnavailable
from service.settings import ServiceSettings, s3_location

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import PaginatorConfigTypeDef

log = logging.getLogger("stembot.storage")
T = TypeVar("T")
CHUNK = 256 * 1024  # bytes read from S3 per write to an HTTP answer
# Errors that say the store is not there (or not well) now, not that a request was wrong.
_OUTAGES = (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError,
            S3UploadFailedError)
_BUSY = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout"}
UNAVAILABLE = "the object store could not be reached; try again later"


def _status(error: botocore.exceptions.ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _missing(error: botocore.exceptions.ClientError) -> bool:
    return _status(error) == 404 or error.response.get("Error", {}).get("Code") in (
        "404", "NoSuchKey", "NotFound")


def make_client(settings: ServiceSettings) -> S3Client:
    """A client for the settings' endpoint; path-style addressing for any non-AWS endpoint."""
    config = botocore.config.Config(
        retries={"total_max_attempts": 3, "mode": "standard"},
        connect_timeout=settings.s3_timeout, read_timeout=settings.s3_timeout,
        max_pool_connections=32,
        s3={"addressing_style": "path" if settings.s3_endpoint_url else "auto"})
    return boto3.session.Session().client(
        "s3", endpoint_url=settings.s3_endpoint_url or None,
        region_name=settings.s3_region or "us-east-1",
        # empty: boto3's own chain (the AWS_* environment, ~/.aws, an instance role)
        aws_access_key_id=settings.s3_access_key or None,
        aws_secret_access_key=settings.s3_secret_key or None, config=config)


class S3Blobs:
    """Key `CONTENT_ID/path` is object `PREFIX/CONTENT_ID/path` in the bucket."""

    def __init__(self, client: S3Client, bucket: str, prefix: str, scratch: Path) -> None:
        self._client = client
        self._bucket = bucket
        self._prefix = f"{prefix}/" if prefix else ""
        self._scratch = scratch  # uploads are spooled here, under the byte limit

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> S3Blobs:
        bucket, prefix = s3_location(settings.storage_url)
        return cls(make_client(settings), bucket, prefix, settings.scratch_dir)

    def _key(self, key: str) -> str:
        return self._prefix + key

    async def _call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one boto3 call in a thread; an outage past botocore's retries is
        StorageUnavailable (the log says what happened, the caller only that it did)."""
        try:
            return await asyncio.to_thread(function, *args, **kwargs)
        except _OUTAGES as error:
            log.warning("object store call %s failed: %s", function.__name__, error)
            raise StorageUnavailable(UNAVAILABLE) from None
        except botocore.exceptions.ClientError as error:
            if _status(error) >= 500 or error.response.get("Error", {}).get("Code") in _BUSY:
                log.warning("object store call %s failed: %s", function.__name__, error)
                raise StorageUnavailable(UNAVAILABLE) from None
            raise

    async def check(self) -> None:
        """StartupError, in one line, if the bucket cannot be used with these settings."""
        try:
            await self._call(self._client.head_bucket, Bucket=self._bucket)
        except StorageUnavailable:
            raise StartupError(f"STEMBOT_STORAGE_URL: the object store holding bucket"
                               f" {self._bucket!r} could not be reached (check"
                               " STEMBOT_S3_ENDPOINT_URL)") from None
        except botocore.exceptions.ClientError as error:
            why = ("does not exist; create it first" if _missing(error) else
                   "refused these credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
                   if _status(error) in (401, 403) else f"answered {_status(error)}")
            raise StartupError(f"STEMBOT_STORAGE_URL: bucket {self._bucket!r} {why}") from None
        except botocore.exceptions.NoCredentialsError:
            raise StartupError("STEMBOT_STORAGE_URL: no S3 credentials; set AWS_ACCESS_KEY_ID"
                               " and AWS_SECRET_ACCESS_KEY") from None
        await asyncio.to_thread(self._scratch.mkdir, parents=True, exist_ok=True)

    async def _head(self, key: str) -> dict[str, Any] | None:
        try:
            head = await self._call(self._client.head_object, Bucket=self._bucket,
                                    Key=self._key(key))
        except botocore.exceptions.ClientError as error:
            if _missing(error):
                return None
            raise
        return dict(head)

    async def _listed(self, prefix: str, delimiter: bool, most: int | None = None
                      ) -> list[dict[str, Any]]:
        """The objects whose keys start with `prefix` (right under it with `delimiter`)."""
        def list_objects_v2() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = []
            paginator = self._client.get_paginator("list_objects_v2")
            limit: PaginatorConfigTypeDef = {"MaxItems": most} if most else {}
            # no empty Delimiter: not every store reads `delimiter=` as none
            pages = (paginator.paginate(Bucket=self._bucket, Prefix=self._key(prefix),
                                        Delimiter="/", PaginationConfig=limit) if delimiter
                     else paginator.paginate(Bucket=self._bucket, Prefix=self._key(prefix),
                                             PaginationConfig=limit))
            for page in pages:
                found += [dict(item) for item in page.get("Contents", [])]
            return found
        return await self._call(list_objects_v2)

    async def kind(self, key: str) -> Kind:
        if await self._head(key) is not None:
            return Kind.FILE
        return Kind.FOLDER if await self._listed(key + "/", False, 1) else Kind.NOTHING

    async def size(self, key: str) -> int | None:
        head = await self._head(key)
        return None if head is None else int(head["ContentLength"])

    async def put_stream(self, key: str, chunks: AsyncIterator[bytes], limit: int) -> int:
        """Spooled to a local file first: S3 wants a length, and the limit is checked then."""
        spool = self._scratch / f"upload-{secrets.token_hex(8)}.part"
        try:
            await asyncio.to_thread(self._scratch.mkdir, parents=True, exist_ok=True)
            size = await write_chunks(await asyncio.to_thread(spool.open, "wb"), chunks, limit)
            await self.put_file(key, spool)
        finally:
            await asyncio.to_thread(spool.unlink, True)
        return size

    async def put_file(self, key: str, source: Path) -> None:
        """An upload (multipart for large files); S3 shows the object only once it is whole."""
        await self._call(self._client.upload_file, str(source), self._bucket, self._key(key))

    async def local_copy(self, key: str, target: Path) -> Path:
        try:
            await self._call(self._client.download_file, self._bucket, self._key(key),
                             str(target))
        except botocore.exceptions.ClientError as error:
            if _missing(error):
                raise ContentNotFound(f"no file {key.split('/', 1)[-1]!r}") from None
            raise
        return target

    async def delete(self, key: str) -> bool:
        if await self._head(key) is None:
            return False
        await self._call(self._client.delete_object, Bucket=self._bucket, Key=self._key(key))
        return True

    async def names(self, folder: str, start: str) -> list[str]:
        skip = len(self._key(folder)) + 1
        return sorted(item["Key"][skip:]
                      for item in await self._listed(f"{folder}/{start}", True))

    async def total(self, repositories: list[str]) -> int:
        return sum([int(item["Size"]) for repo in repositories
                    for item in await self._listed(repo + "/", False)])

    async def response(self, key: str, request: web.Request, headers: dict[str, str]
                       ) -> web.StreamResponse:
        """The object streamed through; one byte range (`Range: bytes=a-b`) as a 206."""
        head = await self._head(key)
        if head is None:
            raise ContentNotFound(f"no file {key.split('/', 1)[-1]!r}")
        size = int(head["ContentLength"])
        # the caller names the type (service/served.py); a guess from the name is no type
        fields = {"Content-Type": "application/octet-stream", **headers, "Accept-Ranges": "bytes"}
        try:
            wanted = _range(request, size)
        except ValueError:
            return web.Response(status=416, headers={**fields,
                                                     "Content-Range": f"bytes */{size}"})
        answer = web.StreamResponse(status=200 if wanted is None else 206, headers=fields)
        answer.last_modified = head.get("LastModified")
        start, stop = wanted or (0, size)
        answer.content_length = stop - start
        if wanted is not None:
            answer.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        if request.method == "HEAD" or stop == start:
            await answer.prepare(request)
            await answer.write_eof()
            return answer
        # before the answer starts: an outage here is still a 503 in the error shape
        got = await self._call(self._client.get_object, Bucket=self._bucket,
                               Key=self._key(key), Range=f"bytes={start}-{stop - 1}")
        body = got["Body"]
        try:
            await answer.prepare(request)
            while chunk := await self._call(body.read, CHUNK):
                await answer.write(chunk)
        finally:
            await asyncio.to_thread(body.close)
        await answer.write_eof()
        return answer


def _range(request: web.Request, size: int) -> tuple[int, int] | None:
    """The requested [start, stop) bytes, None for the whole file; ValueError: unsatisfiable."""
    if "Range" not in request.headers:
        return None
    wanted = request.http_range  # ValueError for a malformed header
    start, stop = wanted.start, wanted.stop
    if start is None and stop is None:
        return None
    if start is not None and start < 0:  # `bytes=-N`: the last N bytes
        start, stop = max(0, size + start), size
    start = start or 0
    stop = size if stop is None else min(stop, size)
    if start >= size or start >= stop:
        raise ValueError("unsatisfiable range")
    return start, stop
