"""A typed client of the job API (the Source Separation protocol, see API.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import aiohttp

from separation import Tone

# The wire types and enums are the service's own, so client and server cannot drift apart.
from service.fetch import BodyTooLarge, stream_to_file
from service.protocol import JobWire, Method, State

__all__ = ["ApiError", "Job", "JobApi", "JobWire", "Method", "ServiceUnreachableError",
           "State", "StemFile"]


@dataclass(frozen=True, slots=True)
class StemFile:
    """One result file: which stem, and where the service keeps it."""

    tone: Tone
    content_id: str
    destination: str
    file_name: str

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
    facts: tuple[dict[str, Any], ...] = ()  # the song facts of each separated input

    @classmethod
    def parse(cls, message: JobWire) -> Job:
        results = tuple(
            StemFile(Tone(r["tone"]), out.get("contentId", ""), out.get("destination", "/"),
                     r["fileName"])
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
            facts=tuple(f for out in message.get("outputs", [])
                        for f in out.get("smartContentResult", {}).get("facts", [])),
        )


class ApiError(Exception):
    """The service refused a request; the message is one line for the user."""

    def __init__(self, message: str, code: str = "", status: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class ServiceUnreachableError(ApiError):
    """No answer at all: the service is down or the URL is wrong."""


class JobApi:
    """Speaks the protocol to one endpoint with one pair of credentials."""

    def __init__(
        self, session: aiohttp.ClientSession, url: str, secret_id: str, secret_key: str
    ) -> None:
        self._session = session
        self.url = url
        self._secret_id = secret_id
        self.secret_key = secret_key

    @property
    def base_url(self) -> str:
        """The service root: the endpoint URL without its `/release/job` path."""
        return self.url.removesuffix("/").removesuffix("/release/job")

    async def create_job(
        self, url: str, method: Method, *, custom_id: str, callback: str, timeout_s: int
    ) -> Job:
        request = {
            "customId": custom_id,
            "callback": callback,
            "timeout": timeout_s,
            "inputs": [{"url": url}],
            "outputs": [{
                "contentId": "",
                "destination": "/",
                "inputSelectors": [0],
                "smartContentDescriptor": {"musicSeperate": {"method": int(method)}},
            }],
        }
        body = await self._call("CreateJob", "createJobRequest", request)
        return Job.parse(cast(JobWire, body["createJobResponse"]["job"]))

    async def get_job(self, job_id: str) -> Job:
        body = await self._call("GetJob", "getJobRequest", {"id": job_id})
        return Job.parse(cast(JobWire, body["getJobResponse"]["job"]))

    async def list_jobs(self, custom_id: str) -> list[Job]:
        body = await self._call("ListJobs", "listJobsRequest", {"customId": custom_id})
        return [Job.parse(cast(JobWire, job)) for job in body["listJobsResponse"]["jobs"]]

    async def cancel_job(self, job_id: str) -> Job:
        """The project's CancelJob extension."""
        body = await self._call("CancelJob", "cancelJobRequest", {"id": job_id})
        return Job.parse(cast(JobWire, body["cancelJobResponse"]["job"]))

    async def share_link(self, stem: StemFile) -> tuple[str, int]:
        """A signed, expiring download link (CreateLink extension): (url, expires unix s)."""
        request = {"contentId": stem.content_id, "path": stem.path}
        body = await self._call("CreateLink", "createLinkRequest", request)
        link = body["createLinkResponse"]
        return str(link["url"]), int(link["expiresAt"]) // 1000

    def content_url(self, stem: StemFile) -> str:
        return f"{self.base_url}/content/{quote(stem.content_id, safe='')}/{quote(stem.path)}"

    async def download(self, stem: StemFile, target: Path, max_bytes: int) -> Path:
        """Stream one result file to `target`, refusing more than `max_bytes`."""
        auth = {"Authorization": aiohttp.encode_basic_auth(self._secret_id, self.secret_key)}
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
    if status >= 500 or status == 429:
        # A proxy in front of a restarting service, or a passing overload: try again later.
        detail = error.get("message", "") if error else text[:200]
        return ServiceUnreachableError(
            f"the separation service is unavailable (HTTP {status}: {detail})", status=status)
    if error is None:
        return ApiError(f"the separation service answered HTTP {status}: {text[:200]}",
                        status=status)
    return ApiError(str(error.get("message", "unknown error")), str(error.get("code", "")),
                    status)
