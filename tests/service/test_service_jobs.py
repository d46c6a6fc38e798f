"""Jobs end to end on the real model: results, callbacks, cancel, timeout, failures."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import logging
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from service_harness import Api, Origin, Running, basic_header, make_settings, new_key, serving

from separation import decode, model_files
from separation.loudness import integrated_loudness
from service.app import start_service
from service.auth import sign_link
from service.state import SERVICE
from wire.signature import SIGNATURE_HEADER

# the job protocol's contract, on SQLite + local files and on PostgreSQL + S3
BOTH_BACKENDS = True

def signed(body: bytes, headers: dict[str, str], secret_key: str) -> bool:
    """What a callback receiver does: recompute the HMAC and compare in constant time."""
    expected = "sha256=" + hmac.new(secret_key.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers.get(SIGNATURE_HEADER, ""))


async def test_job_end_to_end(running: Running, origin: Origin, short_wav: Path,
                              tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Two inputs (a loopback URL and an uploaded file), two outputs, callback, downloads."""
    caplog.set_level(logging.DEBUG)
    api, key = running.api, running.api.key
    clip = await asyncio.to_thread(short_wav.read_bytes)
    mine = await api.repository("mine")
    status, stored = await api.raw("PUT", f"/content/{mine}/uploads/clip.wav", data=clip,
                                   headers=basic_header(key))
    assert status == 201 and stored["content"]["path"] == "uploads/clip.wav"
    created = await api.ok("CreateJob", {
        "customId": "e2e", "callback": origin.url + "/callback", "timeout": 300,
        "inputs": [{"url": origin.url + "/files/clip.wav"},
                   {"source": {"contentId": mine, "path": "/uploads/clip.wav"}}],
        "outputs": [
            {"inputSelectors": [0], "smartContentDescriptor": {"musicSeperate": {"method": 1}}},
            {"contentId": mine, "destination": "/stems/four", "inputSelectors": [1],
             "smartContentDescriptor": {"musicSeperate": {"method": 2}}},
        ],
    })
    job_id = created["job"]["id"]
    # the API stays responsive while a worker separates: the first of the two runs is done
    # (progress 50), the second, a 4-stem run of seconds, is under way
    await api.until(job_id, lambda job: job["state"] != 2 or job["progress"] >= 50)
    latencies: list[float] = []
    states = set()
    for _ in range(10):
        started = time.perf_counter()
        states.add((await api.job(job_id))["state"])
        latencies.append(time.perf_counter() - started)
    assert states == {2} and max(latencies) < 1.0, (states, latencies)
    job = await api.wait(job_id)
    assert job["state"] == 3, job
    assert job["progress"] == 100
    two, four = job["outputs"]
    assert two["contentId"] == key.default_content
    assert [r["tone"] for r in two["smartContentResult"]["musicSeperate"]] == [1, 5]
    assert [r["tone"] for r in four["smartContentResult"]["musicSeperate"]] == [1, 2, 3, 5]
    # the song facts extension: one per separated input, read from that separation's stems
    loudness = integrated_loudness(decode(short_wav), 44_100)
    for output, stems in ((two, {"vocals", "other"}), (four, {"vocals", "drums", "bass", "other"})):
        (facts,) = output["smartContentResult"]["facts"]
        # 5 s hold ten beats: the trackers may not agree enough; if they do, on 120 BPM
        assert facts["tempo"] is None or facts["tempo"]["bpm"] == pytest.approx(120, rel=0.02)
        assert facts["loudness"]["mix"] == pytest.approx(loudness, abs=0.01)
        assert set(facts["loudness"]["stems"]) == stems
        # the chords: organ and bass play Am F C G a bar (2 s) each; they cover the clip
        chords = facts["chords"]
        assert chords[0]["start"] == 0 and chords[-1]["end"] == pytest.approx(5.0, abs=0.01)
        assert all(a["end"] == b["start"] and a["chord"] != b["chord"]
                   for a, b in itertools.pairwise(chords))

    body, headers = await origin.wait_callback(job_id)
    assert signed(body, headers, key.secret_key)
    assert not signed(body + b" ", headers, key.secret_key)
    assert json.loads(body)["state"] == 3
    assert json.loads(body)["outputs"] == job["outputs"]

    for output in job["outputs"]:
        for result in output["smartContentResult"]["musicSeperate"]:
            path = f"{output['destination'].strip('/')}/{result['fileName']}".lstrip("/")
            status, data = await api.raw("GET", f"/content/{output['contentId']}/{path}",
                                         headers=basic_header(key))
            assert status == 200
            target = tmp_path / result["fileName"]
            target.write_bytes(data)
            stem = decode(target)
            assert stem.shape[0] == 2 and stem.shape[1] > 4 * 44_100

    # a signed link works without credentials; a tampered or expired one does not
    vocals = four["smartContentResult"]["musicSeperate"][0]["fileName"]
    link = await api.ok("CreateLink", {"contentId": mine, "path": f"stems/four/{vocals}",
                                       "expiresIn": 60})
    parts = urlsplit(link["url"])
    status, data = await api.raw("GET", f"{parts.path}?{parts.query}")
    assert status == 200 and data[:4] == b"RIFF"
    tampered = parts.query.replace("signature=", "signature=0")
    status, body = await api.raw("GET", f"{parts.path}?{tampered}")
    assert (status, body["error"]["code"]) == (401, "AUTH_FAILED")
    secret = running.service.runner.app[SERVICE].link_secret
    expired, _ = sign_link(secret, "", mine, f"stems/four/{vocals}", -1)
    status, body = await api.raw("GET", expired)
    assert (status, body["error"]["code"]) == (401, "AUTH_FAILED")
    status, body = await api.raw("GET", parts.path)
    assert (status, body["error"]["code"]) == (401, "AUTH_FAILED")

    listed = await api.ok("ListJobs", {"customId": "e2e"})
    assert listed["total"] == 1 and listed["jobs"][0]["id"] == job_id
    assert key.secret_key not in caplog.text
    assert running.other.secret_key not in caplog.text


async def test_cancel_submitted_and_processing(tmp_path: Path, origin: Origin) -> None:
    """One download slot: the first job downloads (PROCESSING), the second waits (SUBMITTED)."""
    async with serving(tmp_path / "data", downloads=1) as running:
        api = running.api
        hook = origin.url + "/callback"
        first = await api.create([{"url": origin.url + "/slow?s=20"}], callback=hook)
        await api.wait(first["id"], states=(2,))
        queued = await api.create([{"url": origin.url + "/files/clip.wav"}], callback=hook)
        assert (await api.job(queued["id"]))["state"] == 1
        canceled = (await api.ok("CancelJob", {"id": queued["id"]}))["job"]
        assert canceled["state"] == 5 and canceled["timing"]["completedAt"] != "0"
        running_job = (await api.ok("CancelJob", {"id": first["id"]}))["job"]
        assert running_job["state"] == 5
        # cancelling a final job changes nothing
        again = (await api.ok("CancelJob", {"id": first["id"]}))["job"]
        assert again["state"] == 5 and again["timing"] == running_job["timing"]
        for job_id in (first["id"], queued["id"]):
            body, headers = await origin.wait_callback(job_id)
            assert json.loads(body)["state"] == 5 and signed(body, headers, api.key.secret_key)
        # the slot is free again and the next job runs; the canceled one never started
        following = await api.create([{"url": origin.url + "/files/missing.wav"}])
        assert (await api.wait(following["id"], within=10))["errorCode"] == "DOWNLOAD_FAILED"
        assert (await api.job(queued["id"]))["timing"]["startedAt"] == "0"


async def test_timeout_ends_in_error(running: Running, origin: Origin) -> None:
    api = running.api
    job = await api.create([{"url": origin.url + "/slow?s=20"}], timeout=1,
                           callback=origin.url + "/callback")
    done = await api.wait(job["id"], within=18)
    assert done["state"] == 4 and done["errorCode"] == "TIMEOUT"
    elapsed = int(done["timing"]["completedAt"]) - int(done["timing"]["createdAt"])
    assert 1000 <= elapsed < 18000  # ended by the deadline, not by the 20 s download
    body, _ = await origin.wait_callback(job["id"])
    assert json.loads(body)["errorCode"] == "TIMEOUT"
    # the runner is free again: the next job starts at once
    following = await api.create([{"url": origin.url + "/files/missing.wav"}])
    assert (await api.wait(following["id"], within=10))["errorCode"] == "DOWNLOAD_FAILED"


async def test_failures_say_why(running: Running, origin: Origin) -> None:
    """Bad audio: ERROR with the reason, and no server path in it."""
    api = running.api
    bad = await api.create([{"url": origin.url + "/files/notaudio.wav"}])
    done = await api.wait(bad["id"])
    assert done["state"] == 4 and done["errorCode"] == "INVALID_AUDIO", done
    assert "/" not in done["errorMessage"].removeprefix("inputs[0]: ")  # no server paths


async def test_five_stems_without_the_piano_model_say_so(tmp_path: Path, origin: Origin) -> None:
    # a model folder holding only the 4-stem network, as before the piano model is installed
    models = tmp_path / "models"
    models.mkdir()
    for name in (model_files.HTDEMUCS.name, model_files.HTDEMUCS_PARTS):
        (models / name).symlink_to(model_files.model_dir() / name)
    settings = make_settings(tmp_path / "data", model_dir=models)
    service = await start_service(settings)
    try:
        async with aiohttp.ClientSession() as client:
            api = Api(client, service.url, await new_key(settings))
            five = await api.create([{"url": origin.url + "/files/clip.wav"}], method=3)
            done = await api.wait(five["id"])
    finally:
        await service.stop()
    assert done["state"] == 4 and done["errorCode"] == "MODEL_NOT_INSTALLED"
    assert "5 stems: piano model not installed" in done["errorMessage"]
    assert str(models) not in done["errorMessage"]


async def test_callback_retries_and_records(running: Running, origin: Origin) -> None:
    origin.refuse_callbacks = True
    job = await running.api.create([{"url": origin.url + "/files/missing.wav"}],
                                   callback=origin.url + "/callback")
    async with asyncio.timeout(10):
        while (state := await running.api.job(job["id"]))[  # noqa: ASYNC110 (polling the API)
                "callbackStatus"]["state"] != "FAILED":
            await asyncio.sleep(0.1)
    assert state["callbackStatus"]["attempts"] == running.settings.callback_attempts
    assert "503" in state["callbackStatus"]["lastError"]


async def test_shifts_are_a_separation_setting_of_the_output(
        running: Running, origin: Origin, tmp_path: Path) -> None:
    """`shifts` is echoed, stored and used: the stems differ from a plain separation's."""
    api, key = running.api, running.api.key
    outputs = [{"inputSelectors": [0], "destination": f"/s{shifts}",
                "smartContentDescriptor": {"musicSeperate": {"method": 1, "shifts": shifts}}}
               for shifts in (1, 2)]
    created = await api.ok("CreateJob", {"inputs": [{"url": origin.url + "/files/clip.wav"}],
                                         "outputs": outputs})
    plain, shifted = created["job"]["outputs"]
    assert plain["smartContentDescriptor"] == {"musicSeperate": {"method": 1}}
    assert shifted["smartContentDescriptor"] == {"musicSeperate": {"method": 1, "shifts": 2}}
    job = await api.wait(created["job"]["id"])
    assert job["state"] == 3, job
    vocals = []
    for output in job["outputs"]:
        result = output["smartContentResult"]["musicSeperate"][0]
        status, data = await api.raw(
            "GET", f"/content/{key.default_content}{output['destination']}/{result['fileName']}",
            headers=basic_header(key))
        assert status == 200
        target = tmp_path / f"{output['destination'].strip('/')}.wav"
        await asyncio.to_thread(target.write_bytes, data)
        vocals.append(decode(target))
    assert vocals[0].shape == vocals[1].shape
    difference = float(abs(vocals[0] - vocals[1]).max())
    assert 1e-3 < difference < 0.5, difference  # a different estimate of the same vocals
