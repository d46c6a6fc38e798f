"""The protocol endpoint over real HTTP: every error, credentials, isolation between keys."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from service_harness import DOCUMENT, Origin, Running, basic_header

from service.state import SERVICE
from service.store import NewKey
from stembot.cli import main

# the job protocol's contract, on SQLite + local files and on PostgreSQL + S3
BOTH_BACKENDS = True

METHOD_1 = {"musicSeperate": {"method": 1}}


def create_request(**changes: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "customId": "c1",
        "inputs": [{"url": "http://127.0.0.1:9/a.wav"}],
        "outputs": [{"inputSelectors": [0], "smartContentDescriptor": METHOD_1}],
    }
    request.update(changes)
    return request


async def error_of(running: Running, status: int, code: str, **kwargs: Any) -> str:
    got, body = await running.api.raw("POST", "/release/job", **kwargs)
    assert got == status, body
    assert body["error"]["code"] == code, body
    assert body["requestId"]
    message: str = body["error"]["message"]
    return message


async def test_malformed_json_and_unknown_action(running: Running) -> None:
    await error_of(running, 400, "INVALID_JSON", data=b"{not json")
    await error_of(running, 400, "INVALID_JSON", json=[1, 2])
    key = running.api.key
    await error_of(running, 400, "UNKNOWN_ACTION", json={
        "action": "DeleteEverything", "secretId": key.secret_id, "secretKey": key.secret_key})
    await error_of(running, 400, "UNKNOWN_ACTION", json={"secretId": key.secret_id})


async def test_bad_credentials(running: Running) -> None:
    key = running.api.key
    for body in (
        {"action": "GetJob", "getJobRequest": {"id": "x"}},
        {"action": "GetJob", "secretId": key.secret_id, "secretKey": "wrong"},
        {"action": "GetJob", "secretId": "AKIDnope", "secretKey": key.secret_key},
        {"action": "GetJob", "secretId": key.secret_id, "secretKey": 5},
    ):
        message = await error_of(running, 401, "AUTH_FAILED", json=body)
        assert key.secret_key not in message


@pytest.mark.parametrize(("changes", "field"), [
    ({"customId": "x" * 64}, "customId"),
    ({"customId": 7}, "customId"),
    ({"timeout": -1}, "timeout"),
    ({"timeout": "10"}, "timeout"),
    ({"timeout": 604801}, "timeout"),
    ({"timeout": 10**16}, "timeout"),  # its deadline would overflow an SQLite INTEGER
    ({"customId": "a\ud800"}, "customId"),  # a lone surrogate: not UTF-8, SQLite can't bind it
    ({"customId": "a\x00b"}, "customId"),  # NUL: PostgreSQL cannot store it, so neither does SQLite
    ({"tenant": "guild 1"}, "tenant"),
    ({"tenant": "g/1"}, "tenant"),
    ({"tenant": "é"}, "tenant"),
    ({"tenant": "g" * 65}, "tenant"),
    ({"tenant": ""}, "tenant"),
    ({"tenant": 123}, "tenant"),
    ({"tenant": None}, "tenant"),
    ({"inputs": [{"url": "http://127.0.0.1:9/\udfff.wav"}]}, "inputs[0].url"),
    ({"inputs": []}, "inputs"),
    ({"inputs": [{}]}, "inputs[0]"),
    ({"inputs": [{"url": "http://127.0.0.1:9/a", "source": {"contentId": "r", "path": "a"}}]},
     "inputs[0]"),
    ({"inputs": [{"url": "ftp://example.com/a.wav"}]}, "inputs[0].url"),
    ({"callback": "not a url"}, "callback"),
    ({"outputs": []}, "outputs"),
    ({"outputs": [{"inputSelectors": [1], "smartContentDescriptor": METHOD_1}]},
     "inputSelectors"),
    ({"outputs": [{"inputSelectors": [-1], "smartContentDescriptor": METHOD_1}]},
     "inputSelectors"),
    ({"outputs": [{"inputSelectors": [], "smartContentDescriptor": METHOD_1}]}, "inputSelectors"),
    ({"outputs": [{"inputSelectors": [0],
                   "smartContentDescriptor": {"musicSeperate": {"method": 4}}}]}, "method"),
    ({"outputs": [{"inputSelectors": [0],
                   "smartContentDescriptor": {"musicSeperate": {"method": True}}}]}, "method"),
    ({"outputs": [{"inputSelectors": [0]}]}, "smartContentDescriptor"),
    *[({"outputs": [{"inputSelectors": [0], "smartContentDescriptor": {
        "musicSeperate": {"method": 2, "shifts": shifts}}}]}, "musicSeperate.shifts")
      for shifts in (0, 9, "2", True, 1.5)],
    ({"outputs": [{"inputSelectors": [0], "smartContentDescriptor": METHOD_1,
                   "destination": "/a/../../b"}]}, "destination"),
    ({"outputs": [{"inputSelectors": [0], "smartContentDescriptor": METHOD_1,
                   "contentId": "../up"}]}, "contentId"),
])
async def test_invalid_fields_create_nothing(running: Running, changes: dict[str, Any],
                                             field: str) -> None:
    status, body = await running.api.call("CreateJob", create_request(**changes))
    assert status == 400, body
    assert body["error"]["code"] == "INVALID_PARAMETER"
    assert field in body["error"]["message"]
    listed = await running.api.ok("ListJobs", {"customId": "c1"})
    assert listed == {"jobs": [], "total": 0}


async def test_longest_timeout_is_accepted(running: Running) -> None:
    job = (await running.api.ok("CreateJob", create_request(timeout=604800)))["job"]
    assert job["customId"] == "c1"


async def test_strings_that_are_not_utf8_are_refused(running: Running) -> None:
    key = running.api.key
    base = {"action": "GetJob", "secretId": key.secret_id, "getJobRequest": {"id": "x"}}
    message = await error_of(running, 400, "INVALID_PARAMETER",
                             json={**base, "secretKey": "\ud800"})
    assert "secretKey" in message
    message = await error_of(running, 400, "INVALID_PARAMETER", json={
        **base, "secretKey": key.secret_key, "action": "ListJobs",
        "listJobsRequest": {"customId": "\udc80"}})
    assert "listJobsRequest.customId" in message
    # a bad name is refused as well as a bad value
    message = await error_of(running, 400, "INVALID_PARAMETER", json={
        **base, "secretKey": key.secret_key, "getJobRequest": {"id": "x", "\ud800": 1}})
    assert "getJobRequest" in message


async def test_deeply_nested_json_is_invalid_json(running: Running) -> None:
    await error_of(running, 400, "INVALID_JSON", data=b"[" * 100_000)
    await error_of(running, 400, "INVALID_JSON", data=b'{"a":' * 100_000)
    # nesting the parser accepts is still checked without running out of stack
    key = running.api.key
    body = json.dumps({"action": "GetJob", "secretId": key.secret_id,
                       "secretKey": key.secret_key, "getJobRequest": "DEEP"})
    deep = body.replace('"DEEP"', "[" * 800 + "]" * 800)
    await error_of(running, 400, "INVALID_PARAMETER", data=deep.encode())


async def test_unexpected_errors_keep_the_error_shape(
        running: Running, caplog: pytest.LogCaptureFixture) -> None:
    service = running.service.runner.app[SERVICE]

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk on fire at /srv/secret/path")

    service.store.job = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR):
        status, body = await running.api.call("GetJob", {"id": "x"})
    assert status == 500, body
    assert body["error"]["code"] == "INTERNAL_ERROR"
    assert body["requestId"]
    assert "/srv/secret" not in body["error"]["message"]
    # the log says what broke, without the caller's secret
    assert "disk on fire" in caplog.text
    assert body["requestId"] in caplog.text
    assert running.api.key.secret_key not in caplog.text


async def test_missing_request_sections(running: Running) -> None:
    for action in ("CreateJob", "GetJob", "ListJobs", "CancelJob", "CreateLink",
                   "CreateRepository"):
        status, body = await running.api.call(action)
        assert (status, body["error"]["code"]) == (400, "INVALID_PARAMETER"), action


async def test_unknown_job(running: Running) -> None:
    for action in ("GetJob", "CancelJob"):
        status, body = await running.api.call(action, {"id": "no-such-job"})
        assert (status, body["error"]["code"]) == (404, "JOB_NOT_FOUND")


async def test_create_job_echoes_the_protocol(running: Running, origin: Origin) -> None:
    """Field names, nesting, enum numbers and string timings as the document shows."""
    request = create_request(
        customId="echo", callback=origin.url + "/callback",
        inputs=[{"url": origin.url + "/files/missing.wav"}])
    created = await running.api.ok("CreateJob", request)
    job = created["job"]
    assert set(job) >= {"id", "state", "customId", "callback", "inputs", "outputs", "timing"}
    assert job["state"] == 1 and job["customId"] == "echo"
    assert job["callback"] == origin.url + "/callback"
    assert job["inputs"] == [{"url": origin.url + "/files/missing.wav"}]
    output = job["outputs"][0]
    assert output["destination"] == "/" and output["inputSelectors"] == [0]
    assert output["smartContentDescriptor"] == METHOD_1
    assert output["contentId"].startswith("repo-")  # the caller's default repository
    assert job["timing"]["startedAt"] == "0" and job["timing"]["completedAt"] == "0"
    assert int(job["timing"]["createdAt"]) > 1_600_000_000_000
    done = await running.api.wait(job["id"])
    assert done["state"] == 4 and done["errorCode"] == "DOWNLOAD_FAILED"
    assert "404" in done["errorMessage"]
    assert all(int(v) > 0 for v in done["timing"].values())
    body, _ = await origin.wait_callback(job["id"])
    assert json.loads(body)["state"] == 4


async def test_two_keys_are_isolated(running: Running, origin: Origin) -> None:
    api, other = running.api, running.other
    mine = await api.create([{"url": origin.url + "/files/missing.wav"}], customId="shared")
    theirs = await api.create([{"url": origin.url + "/files/missing.wav"}], customId="shared",
                              key=other)
    listed = await api.ok("ListJobs", {"customId": "shared"})
    assert [j["id"] for j in listed["jobs"]] == [mine["id"]] and listed["total"] == 1
    listed = await api.ok("ListJobs", {"customId": "shared"}, key=other)
    assert [j["id"] for j in listed["jobs"]] == [theirs["id"]]
    for action in ("GetJob", "CancelJob"):
        status, body = await api.call(action, {"id": theirs["id"]})
        assert (status, body["error"]["code"]) == (404, "JOB_NOT_FOUND")
    # content: another key's repository answers exactly like a missing one
    alices = await api.repository("alices")
    assert alices.startswith("alices-")
    status, _ = await api.raw("PUT", f"/content/{alices}/in.wav", data=b"abc",
                              headers=_basic(api.key))
    assert status == 201
    status, body = await api.raw("PUT", f"/content/{alices}/x.wav", data=b"abc",
                                 headers=_basic(other))
    assert (status, body["error"]["code"]) == (404, "CONTENT_NOT_FOUND")
    status, body = await api.raw("GET", f"/content/{alices}/in.wav", headers=_basic(other))
    assert (status, body["error"]["code"]) == (404, "CONTENT_NOT_FOUND")
    status, body = await api.call("CreateJob", create_request(
        inputs=[{"source": {"contentId": alices, "path": "in.wav"}}]), key=other)
    assert (status, body["error"]["code"]) == (404, "CONTENT_NOT_FOUND")
    status, body = await api.call("CreateJob", create_request(outputs=[{
        "contentId": alices, "inputSelectors": [0], "smartContentDescriptor": METHOD_1}]),
        key=other)
    assert (status, body["error"]["code"]) == (404, "CONTENT_NOT_FOUND")
    status, body = await api.call("CreateLink", {"contentId": alices, "path": "in.wav"},
                                  key=other)
    assert (status, body["error"]["code"]) == (404, "CONTENT_NOT_FOUND")


async def test_keys_cli_and_revocation(running: Running, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("STEMBOT_DATA_DIR", str(running.settings.data_dir))
    monkeypatch.setenv("STEMBOT_DATABASE_URL", running.settings.database_url)
    assert await asyncio.to_thread(main, ["keys", "create", "--name", "carol"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert set(created) == {"secretId", "secretKey", "contentId"}
    key = NewKey(created["secretId"], created["secretKey"], created["contentId"])
    assert (await running.api.ok("ListJobs", {"customId": "none"}, key=key))["total"] == 0
    assert await asyncio.to_thread(main, ["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert "carol" in listing and key.secret_id in listing and key.secret_key not in listing
    assert running.api.key.secret_key not in listing
    assert await asyncio.to_thread(main, ["keys", "revoke", key.secret_id]) == 0
    status, body = await running.api.call("ListJobs", {"customId": "none"}, key=key)
    assert (status, body["error"]["code"]) == (401, "AUTH_FAILED")
    assert await asyncio.to_thread(main, ["keys", "revoke", key.secret_id]) == 1


async def test_openapi_document_is_served(running: Running) -> None:
    status, body = await running.api.raw("GET", "/openapi.json")
    assert status == 200 and body == DOCUMENT
    assert body["openapi"].startswith("3.")
    status, body = await running.api.raw("GET", "/healthz")
    assert status == 200 and body["status"] == "ok"


def _basic(key: NewKey) -> dict[str, str]:
    return basic_header(key)


def test_openapi_file_matches_package(tmp_path: Path) -> None:
    from importlib import resources

    packaged = json.loads(resources.files("service").joinpath("openapi.json").read_text())
    assert packaged == DOCUMENT


async def test_concurrent_requests(running: Running, origin: Origin) -> None:
    """Many clients at once on one SQLite connection: every answer is right."""
    api = running.api
    creates = [api.create([{"url": origin.url + "/files/missing.wav"}], customId="many")
               for _ in range(30)]
    jobs = await asyncio.gather(*creates)
    reads = [api.job(job["id"]) for job in jobs] + [
        api.ok("ListJobs", {"customId": "many"}) for _ in range(30)]
    answers = await asyncio.gather(*reads)
    assert [a["id"] for a in answers[:30]] == [j["id"] for j in jobs]
    assert all(a["total"] == 30 for a in answers[30:])


async def test_oversized_body_and_wrong_method(running: Running) -> None:
    await error_of(running, 413, "PAYLOAD_TOO_LARGE", data=b"{" + b" " * (2 << 20) + b"}")
    status, body = await running.api.raw("GET", "/release/job")
    assert (status, body["error"]["code"]) == (405, "METHOD_NOT_ALLOWED")
