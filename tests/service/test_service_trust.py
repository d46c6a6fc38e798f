"""Trust boundaries over real HTTP: repositories, link hosts, what reaches the log."""

from __future__ import annotations

import re
from pathlib import Path

from service_harness import Api, Running, basic_header, new_key

from service.app import start_service

METHOD_1 = {"musicSeperate": {"method": 1}}


async def test_repositories_are_made_by_the_service(running: Running) -> None:
    api, other = running.api, running.other
    auth = {"headers": basic_header(api.key)}
    # a free id cannot be claimed by a first write, and says so as a missing one does
    status, free = await api.raw("PUT", "/content/free/a.wav", data=b"x", **auth)
    assert (status, free["error"]["code"]) == (404, "CONTENT_NOT_FOUND"), free
    status, body = await api.call("CreateJob", {
        "inputs": [{"url": "http://127.0.0.1:9/a.wav"}],
        "outputs": [{"contentId": "free", "inputSelectors": [0],
                     "smartContentDescriptor": METHOD_1}]})
    assert (status, body["error"]["code"]) == (404, "CONTENT_NOT_FOUND"), body
    assert not (running.settings.content_dir / "free").exists()
    # the service makes them: a random id, optionally starting with a readable name
    plain = await api.repository()
    named = await api.repository("songs")
    assert re.fullmatch(r"repo-[0-9a-f]{16}", plain) and re.fullmatch(r"songs-[0-9a-f]{16}",
                                                                       named)
    status, _ = await api.raw("PUT", f"/content/{named}/a.wav", data=b"x", **auth)
    assert status == 201
    # another key's repository answers exactly as an unknown one, never 403
    status, foreign = await api.raw("PUT", f"/content/{named}/b.wav", data=b"x",
                                    headers=basic_header(other))
    assert status == 404
    assert foreign["error"] == {"code": "CONTENT_NOT_FOUND",
                                "message": free["error"]["message"].replace("free", named)}
    status, body = await api.call("CreateRepository", {"name": "../x"})
    assert (status, body["error"]["code"]) == (400, "INVALID_PARAMETER"), body
    assert "createRepositoryRequest.name" in body["error"]["message"]


async def test_links_never_come_from_the_host_header(running: Running, tmp_path: Path) -> None:
    api = running.api
    repo = api.key.default_content
    status, _ = await api.raw("PUT", f"/content/{repo}/a.txt", data=b"x",
                              headers=basic_header(api.key))
    assert status == 201
    request = {"action": "CreateLink", "secretId": api.key.secret_id,
               "secretKey": api.key.secret_key,
               "createLinkRequest": {"contentId": repo, "path": "a.txt"}}
    status, body = await api.raw("POST", "/release/job", json=request,
                                 headers={"Host": "evil.example"})
    assert status == 200, body
    url = body["createLinkResponse"]["url"]
    # the address the service listens on, since STEMBOT_PUBLIC_URL is not set
    assert url.startswith(f"{running.service.url}/content/{repo}/a.txt?"), url
    # with it set, that
    settings = running.settings.with_changes(data_dir=tmp_path / "public",
                                             public_url="https://stems.example.org/")
    key = await new_key(settings)
    service = await start_service(settings)
    try:
        other = Api(api.client, service.url, key)
        status, _ = await other.raw("PUT", f"/content/{key.default_content}/a.txt", data=b"x",
                                    headers=basic_header(key))
        assert status == 201
        link = await other.ok("CreateLink", {"contentId": key.default_content, "path": "a.txt"})
        assert link["url"].startswith("https://stems.example.org/content/")
    finally:
        await service.stop()
