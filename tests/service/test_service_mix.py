"""MixJob over HTTP on one real 4-stem job: presets are the right sums, peak-safe, rendered once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from service_harness import Api, Separated, separated_job

from separation import decode
from separation.dsp import Float

pytestmark = pytest.mark.asyncio(loop_scope="module")
STEMS = ("vocals", "drums", "bass", "other")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def separated(tmp_path_factory: pytest.TempPathFactory, short_wav: Path
                    ) -> AsyncIterator[Separated]:
    async with separated_job(tmp_path_factory.mktemp("mix") / "data", short_wav) as job:
        yield job


async def download(api: Api, url: str, tmp_path: Path, name: str) -> Float:
    async with api.client.get(url) as response:
        assert response.status == 200, await response.text()
        path = tmp_path / name
        await asyncio.to_thread(path.write_bytes, await response.read())
    return await asyncio.to_thread(decode, path)


async def stems(separated: Separated, tmp_path: Path) -> dict[str, Float]:
    return {stem: await asyncio.to_thread(decode, separated.folder() / name)
            for stem, name in separated.results.items()}


def expected(stems: dict[str, Float], gains: dict[str, float]) -> Float:
    """The float32 sum in delivery order, scaled down to a peak of 1.0 if it passes it."""
    total = np.zeros_like(stems["vocals"])
    for stem in STEMS:
        total += stems[stem] * np.float32(gains[stem])
    peak = float(np.max(np.abs(total)))
    return total / np.float32(peak) if peak > 1.0 else total


async def mix(separated: Separated, **request: Any) -> dict[str, Any]:
    return await separated.api.ok("MixJob", {"id": separated.job["id"], **request})


PRESETS = {
    "instrumental": {"vocals": 0, "drums": 1, "bass": 1, "other": 1},
    "karaoke": {"vocals": 0, "drums": 1, "bass": 1, "other": 1},
    "acapella": {"vocals": 1, "drums": 0, "bass": 0, "other": 0},
    "drumless": {"vocals": 1, "drums": 0, "bass": 1, "other": 1},
    "bassless": {"vocals": 1, "drums": 1, "bass": 0, "other": 1},
}


async def test_each_preset_is_the_sum_of_the_right_stems(separated: Separated,
                                                         tmp_path: Path) -> None:
    sources = await stems(separated, tmp_path)
    assert set(sources) == set(STEMS)
    for preset, gains in PRESETS.items():
        made = await mix(separated, preset=preset, format="wav-float")
        assert made["contentId"] == separated.content_id
        name = "instrumental" if preset == "karaoke" else preset
        assert made["path"] == f"{separated.job['id']}-0-mix-{name}-float.wav"
        got = await download(separated.api, made["url"], tmp_path, f"{preset}.wav")
        np.testing.assert_array_equal(got, expected(sources, gains), err_msg=preset)


async def test_a_loud_mix_is_scaled_down_never_clipped(separated: Separated,
                                                       tmp_path: Path) -> None:
    sources = await stems(separated, tmp_path)
    loud = dict.fromkeys(STEMS, 2.0)
    raw = sum(sources[s] * np.float32(2.0) for s in STEMS)
    assert float(np.max(np.abs(raw))) > 1.0  # this mix would clip as a plain sum
    made = await mix(separated, gains=loud, format="wav-float")
    got = await download(separated.api, made["url"], tmp_path, "loud.wav")
    assert float(np.max(np.abs(got))) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_array_equal(got, expected(sources, loud))


async def test_the_same_mix_asked_twice_is_rendered_once(separated: Separated) -> None:
    first = await mix(separated, gains={"vocals": 0.5, "drums": 1.5}, format="flac")
    path = separated.folder() / first["path"]
    before = path.stat()
    # the same gains spelt otherwise (1 for stems not named) are the same mix
    again = await mix(separated, gains={"drums": 1.5, "vocals": 0.5, "bass": 1},
                      format="flac")
    assert (again["contentId"], again["path"]) == (first["contentId"], first["path"])
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    store = separated.store()
    records = [m for m in await store.mixes_of(separated.job["id"]) if m.path == first["path"]]
    assert len(records) == 1 and records[0].gains == {"vocals": 0.5, "drums": 1.5,
                                                      "bass": 1.0, "other": 1.0}


async def test_every_format_decodes(separated: Separated, tmp_path: Path) -> None:
    length = (await stems(separated, tmp_path))["vocals"].shape[1]
    paths = set()
    for fmt in ("wav", "wav-float", "flac", "mp3", "opus"):
        made = await mix(separated, preset="drumless", format=fmt,
                         destination="/mixes")
        assert made["path"].startswith("mixes/")
        paths.add(made["path"])
        got = await download(separated.api, made["url"], tmp_path, f"drumless.{fmt}")
        assert abs(got.shape[1] - length) < 4096, fmt  # lossy codecs: a frame or so
        assert float(np.max(np.abs(got))) > 0.01, fmt
    assert len(paths) == 5  # one file per format, wav and wav-float included


async def test_a_slower_transposed_mix_is_named_so_and_rendered_once(
        separated: Separated, tmp_path: Path) -> None:
    length = (await stems(separated, tmp_path))["vocals"].shape[1]
    made = await mix(separated, preset="drumless", format="flac", tempo=0.8, semitones=-2)
    assert made["path"].endswith("-mix-drumless-80pct-minus2.flac"), made
    got = await download(separated.api, made["url"], tmp_path, "slow.flac")
    assert got.shape[1] == pytest.approx(length / 0.8, rel=0.01)
    assert 0.01 < float(np.max(np.abs(got))) <= 1.0
    before = (separated.folder() / made["path"]).stat()
    again = await mix(separated, preset="drumless", format="flac", tempo=0.80, semitones=-2.0)
    assert again["path"] == made["path"]
    after = (separated.folder() / made["path"]).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    plain = await mix(separated, preset="drumless", format="flac", tempo=1, semitones=0)
    assert plain["path"].endswith("-mix-drumless.flac")  # the plain mix, as before


BAD: list[tuple[dict[str, Any], str]] = [
    ({"preset": "acapella", "tempo": 2}, "mixJobRequest.tempo must be a number from 0.5 to 1.5"),
    ({"preset": "acapella", "tempo": 0.805}, "mixJobRequest.tempo must be a number from 0.5"),
    ({"preset": "acapella", "tempo": "fast"}, "mixJobRequest.tempo must be a number from 0.5"),
    ({"preset": "acapella", "semitones": 13},
     "mixJobRequest.semitones must be a whole number from -12 to 12"),
    ({"preset": "acapella", "semitones": 1.5}, "mixJobRequest.semitones must be a whole number"),
    ({"preset": "acapella", "semitones": True}, "mixJobRequest.semitones must be a whole number"),
    ({"gains": {"vocals": 2.5}}, "mixJobRequest.gains.vocals must be a number from 0 to 2"),
    ({"gains": {"vocals": -0.1}}, "mixJobRequest.gains.vocals must be a number from 0 to 2"),
    ({"gains": {"vocals": "loud"}}, "mixJobRequest.gains.vocals must be a number from 0 to 2"),
    ({"gains": {"vocals": True}}, "mixJobRequest.gains.vocals must be a number from 0 to 2"),
    ({"gains": {"guitar": 1}}, "mixJobRequest.gains: unknown stem 'guitar'; this job's stems"
                               " are vocals, drums, bass, other"),
    ({"gains": {"accompaniment": 1}}, "unknown stem 'accompaniment'"),
    ({"gains": []}, "mixJobRequest.gains must be an object"),
    ({"preset": "pianoless"}, "mixJobRequest.preset 'pianoless' needs a piano stem"),
    ({"preset": "nightcore"}, "mixJobRequest.preset must be one of instrumental, acapella"),
    ({}, "mixJobRequest needs exactly one of gains or preset"),
    ({"preset": "acapella", "gains": {}}, "mixJobRequest needs exactly one of gains or preset"),
    ({"preset": "acapella", "format": "aiff"}, "mixJobRequest.format must be one of wav,"),
    ({"preset": "acapella", "destination": "../up"}, "mixJobRequest.destination: '..'"),
    ({"preset": "acapella", "contentId": "a/b"}, "mixJobRequest.contentId must be 1-64"),
]


@pytest.mark.parametrize(("fields", "message"), BAD)
async def test_bad_mixes_are_refused_and_create_nothing(
        separated: Separated, fields: dict[str, Any], message: str) -> None:
    store = separated.store()
    files, mixes = separated.files(), await store.mixes_of(separated.job["id"])
    status, body = await separated.api.call("MixJob", {"id": separated.job["id"], **fields})
    assert status == 400 and body["error"]["code"] == "INVALID_PARAMETER", body
    assert message in body["error"]["message"]
    assert separated.files() == files
    assert await store.mixes_of(separated.job["id"]) == mixes


async def test_another_keys_job_and_repository_are_not_found(separated: Separated) -> None:
    api, bob = separated.api, separated.running.other
    status, body = await api.call("MixJob", {"id": separated.job["id"], "preset": "acapella"},
                                  key=bob)
    assert (status, body["error"]["code"]) == (404, "JOB_NOT_FOUND")
    status, body = await api.call("MixJob", {"id": separated.job["id"], "preset": "acapella",
                                             "contentId": bob.default_content})
    assert (status, body["error"]["code"]) == (404, "CONTENT_NOT_FOUND")


async def test_list_jobs_without_custom_id_lists_all_the_keys_jobs(separated: Separated
                                                                   ) -> None:
    api = separated.api
    listed = await api.ok("ListJobs", {})
    assert listed["total"] == 1 and [j["id"] for j in listed["jobs"]] == [separated.job["id"]]
    assert (await api.ok("ListJobs", {}, key=separated.running.other))["total"] == 0
    assert (await api.ok("ListJobs", {"customId": "elsewhere"}))["total"] == 0
