"""Bad input over real HTTP: a specific 4xx in the protocol's shape, never a 500."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from service_harness import Origin, Running, basic_header

from service.state import SERVICE


async def shared_link(running: Running) -> tuple[str, str]:
    """(path, query) of a working signed link to a small file."""
    api = running.api
    repo = api.key.default_content
    status, _ = await api.raw("PUT", f"/content/{repo}/a.txt", data=b"x",
                              headers=basic_header(api.key))
    assert status == 201
    link = await api.ok("CreateLink", {"contentId": repo, "path": "a.txt"})
    parts = urlsplit(link["url"])
    return parts.path, parts.query


@pytest.mark.parametrize(("query", "says"), [
    ("expires={expires}&signature=%C3%A9", "signature"),  # non-ASCII
    ("expires=%C2%B2&signature={signature}", "expires"),  # a digit isdigit takes, int not
    ("expires=" + "9" * 5000 + "&signature={signature}", "expires"),
    ("expires=-5&signature={signature}", "expires"),
])
async def test_malformed_link_parameters(running: Running, query: str, says: str) -> None:
    path, good = await shared_link(running)
    fields = dict(item.split("=") for item in good.split("&"))
    status, body = await running.api.raw("GET", f"{path}?{query.format(**fields)}")
    assert (status, body["error"]["code"]) == (401, "AUTH_FAILED"), body
    assert says in body["error"]["message"]
    status, data = await running.api.raw("GET", f"{path}?{good}")
    assert (status, data) == (200, b"x")


def no_server_path(running: Running, body: dict[str, Any]) -> None:
    assert str(running.settings.data_dir.parent) not in body["error"]["message"], body


async def test_put_where_a_folder_or_a_file_is_in_the_way(running: Running) -> None:
    api, auth = running.api, {"headers": basic_header(running.api.key)}
    repo = api.key.default_content
    for path in ("f1", "d/x"):
        status, _ = await api.raw("PUT", f"/content/{repo}/{path}", data=b"old", **auth)
        assert status == 201
    for path in ("d", "f1/child", "f1/child/deeper"):
        status, body = await api.raw("PUT", f"/content/{repo}/{path}", data=b"new", **auth)
        assert (status, body["error"]["code"]) == (409, "PATH_CONFLICT"), (path, body)
        no_server_path(running, body)
    status, body = await api.raw("PUT", f"/content/{repo}/{'n' * 300}", data=b"new", **auth)
    assert (status, body["error"]["code"]) == (400, "INVALID_PARAMETER"), body
    assert "longer than 240 bytes" in body["error"]["message"]
    # nothing changed, and no part file was left behind
    files = sorted(p.relative_to(running.settings.content_dir / repo).as_posix()
                   for p in (running.settings.content_dir / repo).rglob("*"))
    assert files == ["d", "d/x", "f1"]
    for path in ("f1", "d/x"):
        assert await api.raw("GET", f"/content/{repo}/{path}", **auth) == (200, b"old")


@pytest.mark.parametrize(("destination", "status", "code"), [
    ("/f1", 409, "PATH_CONFLICT"),
    ("/f1/sub", 409, "PATH_CONFLICT"),
    ("/" + "n" * 300, 400, "INVALID_PARAMETER"),
    ("/" + "/".join(["n" * 200] * 6), 400, "INVALID_PARAMETER"),  # over 1024 bytes
])
async def test_destination_is_checked_at_creation(
        running: Running, origin: Origin, destination: str, status: int, code: str) -> None:
    api = running.api
    repo = api.key.default_content
    put, _ = await api.raw("PUT", f"/content/{repo}/f1", data=b"x",
                           headers=basic_header(api.key))
    assert put == 201
    got, body = await api.call("CreateJob", {
        "customId": "dest", "inputs": [{"url": origin.url + "/files/clip.wav"}],
        "outputs": [{"destination": destination, "inputSelectors": [0],
                     "smartContentDescriptor": {"musicSeperate": {"method": 1}}}]})
    assert (got, body["error"]["code"]) == (status, code), body
    assert "outputs[0].destination" in body["error"]["message"]
    no_server_path(running, body)
    assert (await api.ok("ListJobs", {"customId": "dest"}))["total"] == 0


async def test_source_faults_are_named_for_what_they_are(running: Running) -> None:
    """A file deleted between CreateJob and the run is missing; a fault reading it is not."""
    api = running.api
    repo = api.key.default_content
    content = running.service.runner.app[SERVICE].content
    real = content.existing_file
    calls: Counter[str] = Counter()

    async def run_time_fault(content_id: str, rel: str) -> Path:
        calls[rel] += 1
        if calls[rel] > 1:  # the first look is CreateJob's, the next the run's
            if rel == "bug.wav":
                raise RuntimeError("disk on fire at /srv/secret/in.wav")
            await asyncio.to_thread((running.settings.content_dir / repo / rel).unlink)
        return await real(content_id, rel)

    content.existing_file = run_time_fault  # type: ignore[method-assign]
    for name, code in (("vanish.wav", "INPUT_NOT_FOUND"), ("bug.wav", "INTERNAL_ERROR")):
        status, _ = await api.raw("PUT", f"/content/{repo}/{name}", data=b"x",
                                  headers=basic_header(api.key))
        assert status == 201
        job = await api.create([{"source": {"contentId": repo, "path": name}}])
        done = await api.wait(job["id"])
        assert (done["state"], done["errorCode"]) == (4, code), done
        assert "/srv" not in done["errorMessage"]
        assert str(running.settings.data_dir) not in done["errorMessage"]


@pytest.mark.parametrize(("changes", "field"), [
    ({"inputs": [{"url": "http://[::1/a.wav"}]}, "inputs[0].url"),
    ({"inputs": [{"url": "http://127.0.0.1:99999/a.wav"}]}, "inputs[0].url"),
    ({"callback": "http://[::1/hook"}, "callback"),
])
async def test_malformed_urls_are_invalid_parameters(
        running: Running, changes: dict[str, Any], field: str) -> None:
    request = {"customId": "bad-url", "inputs": [{"url": "http://127.0.0.1:9/a.wav"}],
               "outputs": [{"inputSelectors": [0],
                            "smartContentDescriptor": {"musicSeperate": {"method": 1}}}],
               **changes}
    status, body = await running.api.call("CreateJob", request)
    assert (status, body["error"]["code"]) == (400, "INVALID_PARAMETER"), body
    assert field in body["error"]["message"]
    assert (await running.api.ok("ListJobs", {"customId": "bad-url"}))["total"] == 0


@pytest.mark.parametrize("location", ["http://[::1/", "http://127.0.0.1:99999/x"])
async def test_a_redirect_to_a_malformed_url_is_a_failed_download(
        running: Running, origin: Origin, location: str) -> None:
    job = await running.api.create([{"url": f"{origin.url}/goto?{urlencode({'to': location})}"}])
    done = await running.api.wait(job["id"])
    assert (done["state"], done["errorCode"]) == (4, "DOWNLOAD_FAILED"), done
    assert "malformed URL" in done["errorMessage"]


async def test_a_destination_taken_during_the_run_is_named(
        running: Running, origin: Origin) -> None:
    """A file put where the destination folder goes, after CreateJob checked it (one real
    separation): PATH_CONFLICT without server paths, not INTERNAL_ERROR with them."""
    api = running.api
    repo = api.key.default_content
    job = (await api.ok("CreateJob", {
        "inputs": [{"url": origin.url + "/files/clip.wav"}],
        "outputs": [{"destination": "/later", "inputSelectors": [0],
                     "smartContentDescriptor": {"musicSeperate": {"method": 1}}}]}))["job"]
    # the separation takes seconds; this takes milliseconds
    status, _ = await api.raw("PUT", f"/content/{repo}/later", data=b"x",
                              headers=basic_header(api.key))
    assert status == 201
    done = await api.wait(job["id"])
    assert (done["state"], done["errorCode"]) == (4, "PATH_CONFLICT"), done
    assert "'later' is a file" in done["errorMessage"]
    assert str(running.settings.data_dir.parent) not in done["errorMessage"]


def _labelled(track: Any, repo: str) -> dict[str, Any]:
    return {"inputs": [{"source": {"contentId": repo, "path": "a.wav"}, "track": track}]}


@pytest.mark.parametrize(("track", "says"), [
    ("Song", "inputs[0].track must be an object"),
    ({"title": ""}, "inputs[0].track.title is required"),
    ({"title": "x", "album": "y"}, "inputs[0].track.album is not a field of a track"),
    ({"title": "x" * 301}, "inputs[0].track.title is longer than 300 characters"),
    ({"title": "x", "uploader": 3}, "inputs[0].track.uploader must be a string"),
    ({"title": "x", "page": "ftp://a/b"}, "inputs[0].track.page must be an http or https URL"),
])
async def test_a_bad_track_label_is_refused_and_creates_nothing(
        running: Running, track: Any, says: str) -> None:
    repo = running.api.key.default_content
    request = {"customId": "bad-track", **_labelled(track, repo),
               "outputs": [{"inputSelectors": [0],
                            "smartContentDescriptor": {"musicSeperate": {"method": 1}}}]}
    status, body = await running.api.call("CreateJob", request)
    assert (status, body["error"]["code"]) == (400, "INVALID_PARAMETER"), body
    assert says in body["error"]["message"]
    assert (await running.api.ok("ListJobs", {"customId": "bad-track"}))["total"] == 0


async def test_an_uploads_track_label_travels_and_a_links_is_ignored(running: Running) -> None:
    """An upload's label is the caller's to give; a link's track is what the service read."""
    repo = running.api.key.default_content
    status, _ = await running.api.raw("PUT", f"/content/{repo}/a.wav", data=b"RIFF",
                                      headers=basic_header(running.api.key))
    assert status == 201
    label = {"title": "Demo tune", "uploader": "The Demos"}
    request = {**_labelled(label, repo), "outputs": [{"inputSelectors": [0, 1],
               "smartContentDescriptor": {"musicSeperate": {"method": 1}}}]}
    request["inputs"].append({"url": "http://127.0.0.1:9/a.wav", "track": label})
    job = (await running.api.ok("CreateJob", request))["job"]
    shown = await running.api.job(job["id"])
    assert shown["inputs"][0]["track"] == {"site": "", "id": "", "title": "Demo tune",
                                           "uploader": "The Demos", "page": ""}
    assert "track" not in shown["inputs"][1]
