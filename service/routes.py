"""HTTP handlers: the protocol endpoint, content repositories, the OpenAPI document."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from download.errors import UrlNotAllowed
from download.fetch import check_url
from service.auth import authenticate, basic_credentials, check_link, sign_link, sign_player
from service.bodies import chunks, counted, cut_off, read_body
from service.content import check_content_id, clean_path
from service.errors import (
    ApiError,
    ContentNotFound,
    InvalidJson,
    InvalidParameter,
    JobNotFound,
    RequestTimeout,
    UnknownAction,
)
from service.limits import check_open_jobs, check_separations
from service.midi import requested_stems
from service.mixes import job_stems, parse_mix
from service.origins import link_headers
from service.protocol import (
    Job,
    check_text,
    integer,
    obj,
    parse_create,
    parse_tenant,
    string,
)
from service.served import file_headers
from service.session import COOKIE, session_key
from service.state import SERVICE, Service
from service.store import Key, now_ms
from wire.jobs import OutputSpec

# (service, caller, body, base URL of links) -> the <action>Response part
Action = Callable[[Service, Key, dict[str, Any], str], Awaitable[dict[str, Any]]]
MAX_LINK_TTL = 365 * 24 * 3600
# a name, '-' and 16 hex digits make a contentId of at most 64 characters
REPOSITORY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,46}")
MAX_JSON_BODY = 1024 * 1024
PAGE_DEFAULT, PAGE_MAX = 100, 1000  # ListJobs page size
MAX_OFFSET = 2**31 - 1  # SQLite takes 64-bit integers; no caller has more jobs than this
log = logging.getLogger("stembot.service")

routes = web.RouteTableDef()
REQUEST_ID = web.RequestKey("request_id", str)


def request_id(request: web.Request) -> str:
    """One UUID per request, shared by the answer and any error."""
    if REQUEST_ID not in request:
        request[REQUEST_ID] = str(uuid.uuid4())
    return request[REQUEST_ID]


def answer(request: web.Request, body: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response({"requestId": request_id(request), **body}, status=status)


# --- POST /release/job ------------------------------------------------------------------


@routes.post("/release/job")
async def release_job(request: web.Request) -> web.Response:
    try:
        settings = request.app[SERVICE].settings
        body = json.loads(await read_body(request, MAX_JSON_BODY, settings.body_timeout))
    except (ValueError, UnicodeDecodeError):
        raise InvalidJson("the body is not valid JSON") from None
    except RecursionError:
        raise InvalidJson("the body is nested too deeply") from None
    if not isinstance(body, dict):
        raise InvalidJson("the body must be a JSON object")
    check_text(body)
    action = body.get("action")
    handler = ACTIONS.get(action) if isinstance(action, str) else None
    if handler is None:
        known = ", ".join(ACTIONS)
        raise UnknownAction(f"action must be one of {known}, not {action!r}")
    service = request.app[SERVICE]
    if "secretId" in body or "secretKey" in body or COOKIE not in request.cookies:
        key = await authenticate(service.store, body.get("secretId"), body.get("secretKey"))
    else:  # the start page, signed in: the cookie stands for the key
        key = await session_key(request)
    return answer(request, await handler(service, key, body, service.base_url))


def section(body: dict[str, Any], name: str) -> dict[str, Any]:
    if name not in body:
        raise InvalidParameter(f"{name} is required")
    return obj(body[name], name)


async def create_job(
    service: Service, key: Key, body: dict[str, Any], base: str
) -> dict[str, Any]:
    """Validate everything, then store the job."""
    request = parse_create(section(body, "createJobRequest"), service.settings.default_timeout)
    check_separations(request, service.settings.max_separations)
    if request.callback:
        await check_url(request.callback, service.callback_limits, "callback")
    await service.runner.retention.check_room("CreateJob")
    for index, spec in enumerate(request.inputs):
        if spec.url:
            await check_url(spec.url, service.fetch_limits, f"inputs[{index}].url")
        else:
            await service.content.readable(key.secret_id, spec.content_id)
            rel = clean_path(spec.path, f"inputs[{index}].source.path", root_slash=True)
            await service.content.existing_file(spec.content_id, rel)
    await check_open_jobs(service.store, key.secret_id, service.settings.max_open_jobs)
    outputs = tuple([await checked_output(service, key, output, f"outputs[{index}]")
                     for index, output in enumerate(request.outputs)])
    job = await service.runner.submit(key.secret_id, request, outputs)
    [job] = await service.runner.with_queue([job])
    return {"createJobResponse": {"job": job.wire()}}


async def checked_output(service: Service, key: Key, output: OutputSpec, name: str
                         ) -> OutputSpec:
    """The output in the caller's repository, its destination a folder that can be made."""
    content_id = output.content_id or key.default_content
    check_content_id(content_id, f"{name}.contentId")
    destination = clean_path(output.destination, f"{name}.destination", root_slash=True)
    await service.content.writable(key.secret_id, content_id)
    # Now, not after a whole separation: a file in the way would fail the job at its end.
    await service.content.check_writable(content_id, destination, folder=True,
                                         name=f"{name}.destination")
    return dataclasses.replace(output, content_id=content_id)


async def owned_job(service: Service, key: Key, body: dict[str, Any], request: str) -> Job:
    """The job named by `<request>.id`, if this key owns it; another key's job is not found."""
    job_id = string(section(body, request), "id", f"{request}.id")
    job = await service.store.job(job_id, key.secret_id)
    if job is None:
        raise JobNotFound(f"no job {job_id!r}")
    return job


async def get_job(
    service: Service, key: Key, body: dict[str, Any], base: str
) -> dict[str, Any]:
    job = await owned_job(service, key, body, "getJobRequest")
    [job] = await service.runner.with_queue([job])
    return {"getJobResponse": {"job": service.runner.with_progress(job).wire()}}


async def list_jobs(
    service: Service, key: Key, body: dict[str, Any], base: str
) -> dict[str, Any]:
    """One page (`offset`, `limit`) of the caller's jobs with the customId (without one: all
    the caller's jobs) and the tenant, if one is given; `total`: all of them."""
    fields = section(body, "listJobsRequest")
    custom_id = (string(fields, "customId", "listJobsRequest.customId")
                 if "customId" in fields else None)
    tenant = (parse_tenant(fields, "tenant", "listJobsRequest.tenant")
              if "tenant" in fields else None)
    offset = integer(fields, "offset", "listJobsRequest.offset", 0)
    limit = integer(fields, "limit", "listJobsRequest.limit", PAGE_DEFAULT)
    if not 0 <= offset <= MAX_OFFSET:
        raise InvalidParameter(f"listJobsRequest.offset must be 0..{MAX_OFFSET}")
    if not 1 <= limit <= PAGE_MAX:
        raise InvalidParameter(f"listJobsRequest.limit must be 1..{PAGE_MAX}")
    jobs, total = await service.store.jobs_by_custom_id(key.secret_id, custom_id, offset, limit,
                                                        tenant)
    jobs = await service.runner.with_queue(jobs)
    return {"listJobsResponse": {"jobs": [service.runner.with_progress(j).wire() for j in jobs],
                                 "total": total}}


async def cancel_job(
    service: Service, key: Key, body: dict[str, Any], base: str
) -> dict[str, Any]:
    job = await service.runner.cancel(await owned_job(service, key, body, "cancelJobRequest"))
    return {"cancelJobResponse": {"job": service.runner.with_progress(job).wire()}}


async def delete_job(
    service: Service, key: Key, body: dict[str, Any], base: str
) -> dict[str, Any]:
    job = await service.runner.delete(await owned_job(service, key, body, "deleteJobRequest"))
    return {"deleteJobResponse": {"job": service.runner.with_progress(job).wire()}}


async def create_link(
    service: Service, key: Key, body: dict[str, Any], base: str
) -> dict[str, Any]:
    fields = section(body, "createLinkRequest")
    content_id = string(fields, "contentId", "createLinkRequest.contentId")
    rel = clean_path(string(fields, "path", "createLinkRequest.path"),
                     "createLinkRequest.path", root_slash=True)
    ttl = integer(fields, "expiresIn", "createLinkRequest.expiresIn", service.settings.link_ttl)
    if not 0 < ttl <= MAX_LINK_TTL:
        raise InvalidParameter(f"createLinkRequest.expiresIn must be 1..{MAX_LINK_TTL} seconds")
    await service.content.readable(key.secret_id, content_id)
    await service.content.existing_file(content_id, rel)
    url, expires = sign_link(service.link_secret, service.content_base, content_id, rel, ttl)
    return {"createLinkResponse": {"url": url, "expiresAt": str(expires * 1000)}}


async def create_repository(
    service: Service, key: Key, body: dict[str, Any], base: str
) -> dict[str, Any]:
    fields = section(body, "createRepositoryRequest")
    name = string(fields, "name", "createRepositoryRequest.name", "")
    if name and not REPOSITORY_NAME.fullmatch(name):
        raise InvalidParameter("createRepositoryRequest.name must be 1-47 letters, digits,"
                               " '.', '_' or '-', starting with a letter or digit")
    content_id = await service.content.create(key.secret_id, name)
    return {"createRepositoryResponse": {"contentId": content_id}}


async def mix_job(
    service: Service, key: Key, body: dict[str, Any], base: str
) -> dict[str, Any]:
    """The job's stems summed with gains (or a preset), written beside its results."""
    job = await owned_job(service, key, body, "mixJobRequest")
    stems = job_stems(job)
    spec = parse_mix(section(body, "mixJobRequest"), stems, job.outputs[0],
                     service.settings.output_format)
    record = await service.mixer.mix(job, stems, spec)
    url, _ = sign_link(service.link_secret, service.content_base, record.content_id,
                       record.path, service.settings.link_ttl)
    return {"mixJobResponse": {"contentId": record.content_id, "path": record.path,
                               "url": url}}


async def create_player_link(
    service: Service, key: Key, body: dict[str, Any], base: str
) -> dict[str, Any]:
    """A signed, expiring link to the job's player page; the rules of CreateLink."""
    job = await owned_job(service, key, body, "createPlayerLinkRequest")
    job_stems(job)  # only a COMPLETED job with stems has a player
    ttl = integer(section(body, "createPlayerLinkRequest"), "expiresIn",
                  "createPlayerLinkRequest.expiresIn", service.settings.link_ttl)
    if not 0 < ttl <= MAX_LINK_TTL:
        raise InvalidParameter(
            f"createPlayerLinkRequest.expiresIn must be 1..{MAX_LINK_TTL} seconds")
    url, expires = sign_player(service.link_secret, base, job.id, ttl)
    return {"createPlayerLinkResponse": {"url": url, "expiresAt": str(expires * 1000)}}


async def create_midi(
    service: Service, key: Key, body: dict[str, Any], base: str
) -> dict[str, Any]:
    """The job's pitched stems as MIDI files beside them (service/midi.py), each made once."""
    job = await owned_job(service, key, body, "createMidiRequest")
    stems = requested_stems(section(body, "createMidiRequest"), job_stems(job))
    await service.runner.retention.check_room("CreateMidi")
    files = []
    for made in await service.midi.make(job, stems):
        url, _ = sign_link(service.link_secret, service.content_base, made.content_id,
                           made.path, service.settings.link_ttl)
        files.append({"stem": made.stem, "contentId": made.content_id, "path": made.path,
                      "url": url})
    return {"createMidiResponse": {"files": files}}


ACTIONS: dict[str, Action] = {
    "CreateJob": create_job,
    "GetJob": get_job,
    "ListJobs": list_jobs,
    "CancelJob": cancel_job,
    "DeleteJob": delete_job,
    "CreateLink": create_link,
    "CreateRepository": create_repository,
    "MixJob": mix_job,
    "CreatePlayerLink": create_player_link,
    "CreateMidi": create_midi,
}


# --- content repositories ---------------------------------------------------------------


async def basic_key(request: web.Request) -> Key:
    """HTTP Basic's key; for an upload from the start page, its session's."""
    if ("Authorization" not in request.headers and COOKIE in request.cookies
            and request.method == "PUT"):
        return await session_key(request)
    secret_id, secret_key = basic_credentials(request.headers.get("Authorization"))
    return await authenticate(request.app[SERVICE].store, secret_id, secret_key)


def content_target(request: web.Request) -> tuple[str, str]:
    content_id = check_content_id(request.match_info["content_id"])
    return content_id, clean_path(request.match_info["path"], "path", root_slash=False)


@routes.put("/content/{content_id}/{path:.*}")
async def put_content(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    key = await basic_key(request)
    content_id, rel = content_target(request)
    await service.content.writable(key.secret_id, content_id)
    await service.runner.retention.check_room("this upload")
    replaced = await service.content.size(content_id, rel)
    async with service.quota.reserve(key.secret_id, "this upload", replaced) as add:
        body = counted(chunks(request, service.settings.body_timeout), add)
        size = await service.content.save(content_id, rel, body)
    return answer(request, {"content": {"contentId": content_id, "path": rel, "size": size}},
                  status=201)


@routes.get("/content/{content_id}/{path:.*}")
async def get_content(request: web.Request) -> web.StreamResponse:
    service = request.app[SERVICE]
    content_id, rel = content_target(request)
    headers = file_headers(rel)
    if "signature" in request.query:
        check_link(service.link_secret, content_id, rel, request.query.get("expires", ""),
                   request.query["signature"])
        owner = await service.store.repo_owner(content_id)
        # A revoked key's links die with it.
        if owner is None or await service.store.key(owner) is None:
            raise ContentNotFound(f"no repository {content_id!r}")
        headers |= link_headers(service)
    else:
        key = await basic_key(request)
        await service.content.readable(key.secret_id, content_id)
    await service.content.existing_file(content_id, rel)
    return await service.content.response(content_id, rel, request, headers)


@routes.delete("/content/{content_id}/{path:.*}")
async def delete_content(request: web.Request) -> web.Response:
    """One of the key's own files; its repository's other files and folders stay."""
    service = request.app[SERVICE]
    key = await basic_key(request)
    content_id, rel = content_target(request)
    await service.content.writable(key.secret_id, content_id)
    await service.content.delete(content_id, rel)
    return web.Response(status=204)


# --- the document and liveness ---------------------------------------------------------


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.Response(text=request.app[SERVICE].openapi, content_type="application/json")


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return answer(request, {"status": "ok", "time": str(now_ms())})


@web.middleware
async def errors(request: web.Request,
                 handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                 ) -> web.StreamResponse:
    """Every error, ours, aiohttp's (404, 405, 413) or a fault's (500), in the one shape."""
    try:
        return await handler(request)
    except RequestTimeout as error:
        return await cut_off(error_response(request, error.status, error.code, error.message),
                             request)
    except ApiError as error:
        return error_response(request, error.status, error.code, error.message)
    except UrlNotAllowed as error:  # the download guard's refusal, as at CreateJob
        return error_response(request, 400, error.code, error.message)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
                413: "PAYLOAD_TOO_LARGE"}.get(error.status, "HTTP_ERROR")
        return error_response(request, error.status, code, error.reason)
    except Exception:
        # The path, not the query string (link signatures) nor the body (secret keys).
        log.exception("internal error answering %s %s (requestId %s)", request.method,
                      request.path, request_id(request))
        return error_response(request, 500, "INTERNAL_ERROR",
                              "the server failed to answer; it logged this requestId")


def error_response(request: web.Request, status: int, code: str, message: str) -> web.Response:
    return answer(request, {"error": {"code": code, "message": message}}, status=status)
