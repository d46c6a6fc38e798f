"""The result cache: a repeat of the same bytes completes from stored stems, within its scope."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service_harness import Api, Origin, basic_header, serving

from service.result_cache import CacheScope, ResultCache, Separation
from service.store import NewKey


async def stems_of(api: Api, job: dict[str, Any], key: NewKey) -> list[tuple[bool, bytes]]:
    """(fromCache, file bytes) of every result of the job's only output."""
    output = job["outputs"][0]
    found = []
    for result in output["smartContentResult"]["musicSeperate"]:
        status, data = await api.raw("GET", f"/content/{output['contentId']}/{result['fileName']}",
                                     headers=basic_header(key))
        assert status == 200
        found.append((result.get("fromCache", False), data))
    return found


async def separated(api: Api, url: str, key: NewKey, method: int = 1) -> dict[str, Any]:
    created = await api.create([{"url": url}], method=method, key=key)
    job = await api.wait(created["id"], key=key)
    assert job["state"] == 3, job
    return job


async def test_a_key_repeating_a_song_gets_its_stems_from_the_cache(
        tmp_path: Path, origin: Origin) -> None:
    async with serving(tmp_path / "data") as running:
        api, alice, bob = running.api, running.api.key, running.other
        clip = origin.url + "/files/clip.wav"
        first_job = await separated(api, clip, alice)
        first = await stems_of(api, first_job, alice)
        assert [hit for hit, _ in first] == [False, False]
        again_job = await separated(api, clip, alice)
        again = await stems_of(api, again_job, alice)
        assert [hit for hit, _ in again] == [True, True]
        assert [data for _, data in again] == [data for _, data in first]
        facts = [job["outputs"][0]["smartContentResult"]["facts"] for job in (first_job, again_job)]
        assert facts[1] == facts[0] and facts[0][0]["loudness"] is not None  # kept with the stems
        # its own result files, under its own job id
        assert all(r["fileName"].startswith(again_job["id"])
                   for r in again_job["outputs"][0]["smartContentResult"]["musicSeperate"])
        # another method is another separation; another key does not see alice's results
        assert not any(hit for hit, _ in await stems_of(
            api, await separated(api, clip, alice, method=2), alice))
        assert not any(hit for hit, _ in await stems_of(api, await separated(api, clip, bob),
                                                        bob))


async def test_the_global_scope_shares_across_keys(tmp_path: Path, origin: Origin) -> None:
    async with serving(tmp_path / "data", result_cache=CacheScope.GLOBAL) as running:
        api, alice, bob = running.api, running.api.key, running.other
        clip = origin.url + "/files/clip.wav"
        await separated(api, clip, alice)
        assert all(hit for hit, _ in await stems_of(api, await separated(api, clip, bob), bob))


def test_keys_name_every_setting_that_changes_the_stems(tmp_path: Path) -> None:
    base = Separation(method=2, shifts=1, fmt="wav", runtime="openvino auto")
    owner = ResultCache(tmp_path, CacheScope.OWNER, tmp_path)
    keys = {owner.key("alice", "d1", base), owner.key("bob", "d1", base),
            owner.key("alice", "d2", base),
            owner.key("alice", "d1", Separation(2, 2, "wav", "openvino auto")),
            owner.key("alice", "d1", Separation(3, 1, "wav", "openvino auto")),
            owner.key("alice", "d1", Separation(2, 1, "flac", "openvino auto")),
            owner.key("alice", "d1", Separation(2, 1, "wav", "onnxruntime f32"))}
    assert len(keys) == 7 and None not in keys
    shared = ResultCache(tmp_path, CacheScope.GLOBAL, tmp_path)
    assert shared.key("alice", "d1", base) == shared.key("bob", "d1", base)
    assert ResultCache(tmp_path, CacheScope.OFF, tmp_path).key("alice", "d1", base) is None
