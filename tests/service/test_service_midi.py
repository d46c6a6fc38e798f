"""CreateMidi over HTTP on one real 4-stem job: MIDI files beside the stems, made once, refused
with the field named, deleted with the job."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import mido
import pytest
import pytest_asyncio
from service_harness import Separated, basic_header, separated_job

from separation.midi_file import read_midi

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def separated(tmp_path_factory: pytest.TempPathFactory, short_wav: Path
                    ) -> AsyncIterator[Separated]:
    async with separated_job(tmp_path_factory.mktemp("midi") / "data", short_wav) as job:
        yield job


async def create_midi(separated: Separated, **request: Any) -> list[dict[str, Any]]:
    made = await separated.api.ok("CreateMidi", {"id": separated.job["id"], **request})
    files: list[dict[str, Any]] = made["files"]
    return files


async def test_default_stems_are_written_beside_the_stems_at_the_songs_tempo(
        separated: Separated, tmp_path: Path) -> None:
    files = await create_midi(separated)
    job_id = separated.job["id"]
    # a 4-stem job has no piano: its bass and vocals
    assert [f["stem"] for f in files] == ["vocals", "bass"]
    for made in files:
        assert made["contentId"] == separated.content_id
        assert made["path"] == f"{job_id}-0-{made['stem']}.mid"
        async with separated.api.client.get(made["url"]) as response:
            assert response.status == 200
            path = tmp_path / f"{made['stem']}.mid"
            await asyncio.to_thread(path.write_bytes, await response.read())
        mido.MidiFile(str(path))  # a valid Standard MIDI File
    notes, bpm = read_midi(tmp_path / "bass.mid")
    facts = separated.job["outputs"][0]["smartContentResult"]["facts"][0]
    expected = facts["tempo"]["bpm"] if facts["tempo"] else 120.0
    assert bpm == pytest.approx(expected, abs=0.01)
    # the demo clip's bass plays A2 on each beat of its first bar
    assert notes and notes[0].pitch == 45


async def test_asked_twice_it_is_made_once(separated: Separated) -> None:
    first = await create_midi(separated, stems=["bass"])
    path = separated.folder() / first[0]["path"]
    before = path.stat()
    again = await create_midi(separated, stems=["bass"])
    assert [(f["contentId"], f["path"]) for f in again] == \
        [(f["contentId"], f["path"]) for f in first]
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    records = [m for m in await separated.store().mixes_of(separated.job["id"])
               if m.path == first[0]["path"]]
    assert len(records) == 1 and records[0].format == "mid"


BAD = [
    ({"stems": ["drums"]}, "createMidiRequest.stems: drums are not pitched"),
    ({"stems": ["bass", "drums"]}, "createMidiRequest.stems: drums are not pitched"),
    ({"stems": ["piano"]}, "createMidiRequest.stems: unknown stem 'piano'; this job's stems"
                           " are vocals, drums, bass, other"),
    ({"stems": []}, "createMidiRequest.stems must be a non-empty list of stem names"),
    ({"stems": "bass"}, "createMidiRequest.stems must be a non-empty list of stem names"),
    ({"stems": [3]}, "createMidiRequest.stems must be a non-empty list of stem names"),
]


@pytest.mark.parametrize(("fields", "message"), BAD)
async def test_bad_requests_are_refused_and_create_nothing(
        separated: Separated, fields: dict[str, Any], message: str) -> None:
    store = separated.store()
    files, records = separated.files(), await store.mixes_of(separated.job["id"])
    status, body = await separated.api.call("CreateMidi", {"id": separated.job["id"],
                                                           **fields})
    assert status == 400 and body["error"]["code"] == "INVALID_PARAMETER", body
    assert message in body["error"]["message"]
    assert separated.files() == files
    assert await store.mixes_of(separated.job["id"]) == records


async def test_another_keys_job_is_not_found(separated: Separated) -> None:
    files = separated.files()
    status, body = await separated.api.call("CreateMidi", {"id": separated.job["id"]},
                                            key=separated.running.other)
    assert (status, body["error"]["code"]) == (404, "JOB_NOT_FOUND")
    status, body = await separated.api.call("CreateMidi", {"stems": ["bass"]})
    assert (status, body["error"]["message"]) == (400, "createMidiRequest.id is required")
    assert separated.files() == files


async def test_a_job_that_is_not_completed_is_refused(separated: Separated) -> None:
    api, key = separated.api, separated.api.key
    status, _ = await api.raw("PUT", f"/content/{key.default_content}/other.wav",
                              data=await asyncio.to_thread((separated.folder() / next(
                                  iter(separated.results.values()))).read_bytes),
                              headers=basic_header(key))
    assert status == 201
    job = await api.create([{"source": {"contentId": key.default_content,
                                        "path": "other.wav"}}], method=2)
    await api.ok("CancelJob", {"id": job["id"]})
    files = separated.files()
    status, body = await api.call("CreateMidi", {"id": job["id"]})
    assert (status, body["error"]["code"]) == (409, "JOB_NOT_COMPLETED"), body
    assert separated.files() == files
    assert await separated.store().mixes_of(job["id"]) == []


async def test_deleting_the_job_deletes_its_midi_files(separated: Separated) -> None:
    """Last in the module: the job's files go."""
    files = await create_midi(separated, stems=["vocals", "bass"])
    assert all((separated.folder() / f["path"]).is_file() for f in files)
    await separated.api.ok("DeleteJob", {"id": separated.job["id"]})
    assert not any((separated.folder() / f["path"]).exists() for f in files)
    status, body = await separated.api.call("CreateMidi", {"id": separated.job["id"]})
    assert (status, body["error"]["code"]) == (410, "CONTENT_GONE")
