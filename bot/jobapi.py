"""A typed client of the job API (the Source Separation protocol, see API.md)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import aiohttp

from download.errors import BodyTooLarge
from download.fetch import stream_to_file
from separation.presets import StemPreset

# The wire types and enums are the ones the service sends, so client and server cannot drift.
from wire.enums import State, Tone
from wire.jobs import InputSpec, JobWire, QueueWire

LIST_PAGE = 100  # jobs per ListJobs call; the service's default page


@dataclass(frozen=True, slots=True)
class StemFile:
    """One result file: which stem, and where the service keeps it."""

    tone: Tone
    content_id: str
    destination: str
    file_name: str
    from_cache: bool = False  # the service reused an identical earlier separation

    @property
    def path(self) -> str:
        """The file's path inside its repository: destination joined with the file name."""
        parts = [part for part in self.destination.split("/") if part]
        return "/".join([*parts, self.file_name])


@dataclass(frozen=True, slots=True)
class Job:
    """The parts of a Job the bot acts on."""

    id: str
    state: State
    custom_id: str
    progress: int
    error_code: str | None
    error_message: str | None
    results: tuple[StemFile, ...]
    files_until: float | None = None  # unix seconds: when the service deletes the files
    facts: tuple[dict[str, Any], ...] = ()  # the song facts of each separated input
    queue: QueueWire | None = None  # while SUBMITTED: its place in the service's queue

    @classmethod
    def parse(cls, message: JobWire) -> Job:
        results = tuple(
            StemFile(Tone(r["tone"]), out.get("contentId", ""), out.get("destination", "/"),
                     r["fileName"], bool(r.get("fromCache", False)))
            for out in message.get("outputs", [])
            for r in out.get("smartContentResult", {}).get("musicSeperate", [])
        )
        return cls(
            id=message["id"],
            state=State(message["state"]),
            custom_id=message.get("customId", ""),
            progress=int(message.get("progress", 0)),
            error_code=message.get("errorCode"),
            error_message=message.get("errorMessage"),
            results=results,
            files_until=int(message["resultsExpireAt"]) / 1000
            if "resultsExpireAt" in message else None,
            facts=tuple(f for out in message.get("outputs", [])
                        for f in out.get("smartContentResult", {}).get("facts", [])),
            queue=message.get("queue"),
        )


class ApiError(Exception):
    """The service refused a request; the message is one line for the user."""

    def __init__(self, message: str, code: str = "", status: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class ServiceUnreachableError(ApiError):
    """No answer at all: the service is down or the URL is wrong."""


class ServiceBusyError(ServiceUnreachableError):
    """HTTP 429 (the service's TOO_MANY_JOBS, or a proxy's rate limit): retried like an
    outage while following a job; a refused CreateJob tells the member to come back."""


class JobApi:
    """Speaks the protocol to one endpoint with one pair of credentials."""

    def __init__(
        self, session: aiohttp.ClientSession, url: str, secret_id: str, secret_key: str,
        content_id: str = "",
    ) -> None:
        self._session = session
        self.url = url
        self._secret_id = secret_id
        self.secret_key = secret_key
        # The key's default repository: the bot's checked inputs are uploaded there.
        self.content_id = content_id

    @property
    def base_url(self) -> str:
        """The service root: the endpoint URL without its `/release/job` path."""
        return self.url.removesuffix("/").removesuffix("/release/job")

    async def create_job(
        self, source: InputSpec, method: StemPreset, *, custom_id: str, callback: str,
        timeout_s: int, shifts: int = 1, tenant: str = "",
    ) -> Job:
        separation = {"method": int(method)} | ({"shifts": shifts} if shifts > 1 else {})
        request = {
            "customId": custom_id,
            "callback": callback,
            "timeout": timeout_s,
            **({"tenant": tenant} if tenant else {}),  # fair share between the bot's servers
            "inputs": [source.wire()],
            "outputs": [{
                "contentId": "",
                "destination": "/",
                "inputSelectors": [0],
                "smartContentDescriptor": {"musicSeperate": separation},
            }],
        }
        body = await self._call("CreateJob", "createJobRequest", request)
        return Job.parse(cast(JobWire, body["createJobResponse"]["job"]))

    async def get_job(self, job_id: str) -> Job:
        body = await self._call("GetJob", "getJobRequest", {"id": job_id})
        return Job.parse(cast(JobWire, body["getJobResponse"]["job"]))

    async def list_jobs(self, custom_id: str) -> list[Job]:
        """Every job with the customId, oldest first, a page (ListJobs offset/limit) at a time."""
        jobs: list[Job] = []
        while True:
            page, total = await self._list_page(custom_id, len(jobs), LIST_PAGE)
            jobs += page
            # A service without paging answers everything at once: total is reached too.
            if not page or len(jobs) >= total:
                return jobs

    async def newest_job(self, custom_id: str) -> Job | None:
        """The last job created with the customId, in at most two small ListJobs calls."""
        page, total = await self._list_page(custom_id, 0, 1)
        if not page or len(page) >= total:
            return page[-1] if page else None
        page, _ = await self._list_page(custom_id, total - 1, 1)
        return page[-1] if page else None

    async def _list_page(self, custom_id: str, offset: int, limit: int
                         ) -> tuple[list[Job], int]:
        request = {"customId": custom_id, "offset": offset, "limit": limit}
        answer = (await self._call("ListJobs", "listJobsRequest", request))["listJobsResponse"]
        jobs = [Job.parse(cast(JobWire, job)) for job in answer["jobs"]]
        return jobs, int(answer.get("total", len(jobs)))

    async def cancel_job(self, job_id: str) -> Job:
        """The project's CancelJob extension."""
        body = await self._call("CancelJob", "cancelJobRequest", {"id": job_id})
        return Job.parse(cast(JobWire, body["cancelJobResponse"]["job"]))

    async def delete_job(self, job_id: str) -> Job:
        """The project's DeleteJob extension: the service removes the job's files."""
        body = await self._call("DeleteJob", "deleteJobRequest", {"id": job_id})
        return Job.parse(cast(JobWire, body["deleteJobResponse"]["job"]))

    async def share_link(self, stem: StemFile) -> tuple[str, int]:
        """A signed, expiring download link (CreateLink extension): (url, expires unix s)."""
        request = {"contentId": stem.content_id, "path": stem.path}
        body = await self._call("CreateLink", "createLinkRequest", request)
        link = body["createLinkResponse"]
        return str(link["url"]), int(link["expiresAt"]) // 1000

    async def mix_job(self, job_id: str, preset: str, fmt: str, tempo: float = 1.0,
                      semitones: int = 0) -> StemFile:
        """The project's MixJob extension: the job's stems mixed by a named preset, at a tempo
        and a transposition."""
        request: dict[str, object] = {"id": job_id, "preset": preset, "format": fmt}
        if tempo != 1.0 or semitones:
            request |= {"tempo": tempo, "semitones": semitones}
        made = (await self._call("MixJob", "mixJobRequest", request))["mixJobResponse"]
        return StemFile(Tone.OTHER, str(made["contentId"]), "", str(made["path"]))

    async def create_midi(self, job_id: str) -> list[tuple[str, StemFile]]:
        """The project's CreateMidi extension: the job's pitched stems (its bass, piano and
        vocals) as MIDI files, (stem, file) in the job's stem order."""
        made = (await self._call("CreateMidi", "createMidiRequest", {"id": job_id}))
        return [(str(f["stem"]), StemFile(Tone.OTHER, str(f["contentId"]), "", str(f["path"])))
                for f in made["createMidiResponse"]["files"]]

    async def player_link(self, job_id: str) -> str:
        """A signed link to the job's web player (CreatePlayerLink extension)."""
        body = await self._call("CreatePlayerLink", "createPlayerLinkRequest", {"id": job_id})
        return str(body["createPlayerLinkResponse"]["url"])

    async def waveforms(self, player_url: str, target: Path) -> Path:
        """The job's stems drawn stacked in one PNG, fetched through its player link."""
        path, _, query = player_url.partition("?")
        try:
            async with self._session.get(f"{path}/waveforms.png?{query}") as response:
                if response.status != 200:
                    raise ApiError(f"the service drew no waveforms (HTTP {response.status})",
                                   status=response.status)
                await stream_to_file(response, target, 1 << 24)
        except (aiohttp.ClientError, BodyTooLarge) as error:
            raise ApiError(f"the waveforms could not be fetched ({error})") from None
        return target

    def content_url(self, stem: StemFile) -> str:
        return self._content_url(stem.content_id, stem.path)

    def _content_url(self, content_id: str, path: str) -> str:
        return f"{self.base_url}/content/{quote(content_id, safe='')}/{quote(path)}"

    def _basic_auth(self) -> dict[str, str]:
        return {"Authorization": aiohttp.encode_basic_auth(self._secret_id, self.secret_key)}

    async def upload(self, source: InputSpec, file: Path) -> None:
        """PUT a file into a repository, streamed; the same path again replaces it."""
        size = (await asyncio.to_thread(file.stat)).st_size
        headers = {**self._basic_auth(), "Content-Length": str(size),
                   "Content-Type": "application/octet-stream"}
        url = self._content_url(source.content_id, source.path)
        try:
            async with self._session.put(url, data=_chunks(file), headers=headers) as response:
                if response.status != 201:
                    text = await response.text()
                    raise _api_error(response.status, text, _json_object(text))
        except aiohttp.ClientError as error:
            # The first call of a submission: name the endpoint as configured, as CreateJob did.
            raise ServiceUnreachableError(
                f"the separation service at {self.url} is not reachable ({error})"
            ) from None

    async def delete_content(self, source: InputSpec) -> bool:
        """DELETE one of the key's files (an upload the bot made); False if it was not there."""
        url = self._content_url(source.content_id, source.path)
        try:
            async with self._session.delete(url, headers=self._basic_auth()) as response:
                if response.status in (204, 404):
                    return response.status == 204
                text = await response.text()
                raise _api_error(response.status, text, _json_object(text))
        except aiohttp.ClientError as error:
            raise ServiceUnreachableError(f"the separation service is unreachable: {error}"
                                          ) from None

    async def download(self, stem: StemFile, target: Path, max_bytes: int) -> Path:
        """Stream one result file to `target`, refusing more than `max_bytes`."""
        auth = self._basic_auth()
        try:
            async with self._session.get(self.content_url(stem), headers=auth) as response:
                if response.status != 200:
                    raise ApiError(
                        f"the service did not hand over {stem.file_name}"
                        f" (HTTP {response.status})", status=response.status,
                    )
                # Off the event loop, which `stembot up` shares with the job service.
                try:
                    await stream_to_file(response, target, max_bytes)
                except BodyTooLarge:
                    raise ApiError(f"{stem.file_name} is larger than {max_bytes} bytes") from None
        except aiohttp.ClientError as error:
            raise ServiceUnreachableError(
                f"the separation service at {self.base_url} is not reachable ({error})"
            ) from None
        return target

    async def _call(self, action: str, key: str, request: dict[str, Any]) -> dict[str, Any]:
        payload = {
            "action": action, "secretId": self._secret_id, "secretKey": self.secret_key,
            key: request,
        }
        try:
            async with self._session.post(self.url, json=payload) as response:
                text = await response.text()
                status = response.status
        except aiohttp.ClientError as error:
            raise ServiceUnreachableError(
                f"the separation service at {self.url} is not reachable ({error})"
            ) from None
        body = _json_object(text)
        if status >= 400 or body is None or _error_of(body) is not None:
            raise _api_error(status, text, body)
        return body


async def _chunks(file: Path) -> AsyncIterator[bytes]:
    """The file's bytes, read off the event loop, which `stembot up` shares with the service."""
    handle = await asyncio.to_thread(file.open, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, 1 << 16):
            yield chunk
    finally:
        await asyncio.to_thread(handle.close)


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _error_of(body: dict[str, Any]) -> dict[str, Any] | None:
    error = body.get("error")
    return error if isinstance(error, dict) else None


def _api_error(status: int, text: str, body: dict[str, Any] | None) -> ApiError:
    error = _error_of(body) if body else None
    if status == 429:
        return ServiceBusyError("the separation service is busy, try again later (HTTP 429)",
                                str(error.get("code", "")) if error else "", status)
    if status >= 500:
        # A proxy in front of a restarting service, or a passing overload: try again later.
        detail = error.get("message", "") if error else text[:200]
        return ServiceUnreachableError(
            f"the separation service is unavailable (HTTP {status}: {detail})", status=status)
    if error is None:
        return ApiError(f"the separation service answered HTTP {status}: {text[:200]}",
                        status=status)
    return ApiError(str(error.get("message", "unknown error")), str(error.get("code", "")),
                    status)
