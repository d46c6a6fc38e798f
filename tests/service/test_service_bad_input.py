"""Bad input over real HTTP: a specific 4xx in the protocol's shape, never a 500."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from service_harness import Running, basic_header


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
