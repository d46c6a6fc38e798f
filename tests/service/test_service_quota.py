"""STEMBOT_MAX_STORED_BYTES over real HTTP: uploads and job results count against a key."""

from __future__ import annotations

from pathlib import Path

from service_harness import Origin, Running, basic_header, serving

from service.store import NewKey


async def put(running: Running, key: NewKey, path: str, size: int) -> tuple[int, dict[str, str]]:
    status, body = await running.api.raw("PUT", f"/content/{path}", data=b"x" * size,
                                         headers=basic_header(key))
    return status, body.get("error", {})


async def test_uploads_past_the_quota_are_refused(tmp_path: Path) -> None:
    async with serving(tmp_path / "data", max_stored_bytes=1_000_000) as running:
        alice, bob = running.api.key, running.other
        mine, second = alice.default_content, await running.api.repository("second")
        assert (await put(running, alice, f"{mine}/a.bin", 600_000))[0] == 201
        status, error = await put(running, alice, f"{mine}/b.bin", 600_000)
        assert (status, error["code"]) == (413, "QUOTA_EXCEEDED")
        assert "over their 1000000 byte limit (600000 bytes stored)" in error["message"]
        status, _ = await running.api.raw("GET", f"/content/{mine}/b.bin",
                                          headers=basic_header(alice))
        assert status == 404  # nothing written
        # replacing a file counts only the difference; every repository of the key counts
        assert (await put(running, alice, f"{mine}/a.bin", 900_000))[0] == 201
        status, error = await put(running, alice, f"{second}/c.bin", 200_000)
        assert (status, error["code"]) == (413, "QUOTA_EXCEEDED")
        assert (await put(running, alice, f"{second}/c.bin", 100_000))[0] == 201
        assert (await put(running, bob, f"{bob.default_content}/a.bin", 900_000))[0] == 201


async def test_a_job_whose_results_do_not_fit_ends_in_error(tmp_path: Path,
                                                            origin: Origin) -> None:
    """Two 5 s WAV stems are 1.76 MB: over a 1.5 MB quota, and no stem is left behind."""
    async with serving(tmp_path / "data", max_stored_bytes=1_500_000) as running:
        api, key = running.api, running.api.key
        job = await api.create([{"url": origin.url + "/files/clip.wav"}])
        done = await api.wait(job["id"], within=120)
        assert (done["state"], done["errorCode"]) == (4, "QUOTA_EXCEEDED"), done
        assert "the results (17" in done["errorMessage"]
        assert "over their 1500000 byte limit (0 bytes stored)" in done["errorMessage"]
        for stem in ("vocals", "other"):
            status, _ = await api.raw("GET", f"/content/{key.default_content}/"
                                      f"{job['id']}-0-{stem}.wav", headers=basic_header(key))
            assert status == 404
        # a key already at its limit gets no separation at all
        assert (await put(running, key, f"{key.default_content}/full.bin", 1_500_000))[0] == 201
        full = await api.create([{"url": origin.url + "/files/clip.wav"}])
        done = await api.wait(full["id"], within=10)
        assert done["errorCode"] == "QUOTA_EXCEEDED"
        assert "already hold 1500000 bytes" in done["errorMessage"]
