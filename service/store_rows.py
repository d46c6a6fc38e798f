"""Row <-> Job conversion, shared by the SQLite and PostgreSQL stores (same columns)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from separation.presets import StemPreset
from service.protocol import Job
from service.store import Key, MixRecord
from wire.enums import State, Tone
from wire.jobs import InputSpec, OutputSpec, Result

Row = Mapping[str, Any]


def dump_inputs(inputs: tuple[InputSpec, ...]) -> str:
    return json.dumps([i.wire() for i in inputs])


def dump_outputs(outputs: tuple[OutputSpec, ...]) -> str:
    return json.dumps([o.wire() for o in outputs])


def _load_input(raw: dict[str, Any]) -> InputSpec:
    track = raw.get("track")
    if "url" in raw:
        return InputSpec(url=raw["url"], track=track)
    return InputSpec(content_id=raw["source"]["contentId"], path=raw["source"]["path"],
                     track=track)


def _load_output(raw: dict[str, Any]) -> OutputSpec:
    results = raw.get("smartContentResult")
    return OutputSpec(
        content_id=raw["contentId"],
        destination=raw["destination"],
        selectors=tuple(raw["inputSelectors"]),
        method=StemPreset(raw["smartContentDescriptor"]["musicSeperate"]["method"]),
        results=None if results is None else tuple(
            Result(Tone(r["tone"]), r["fileName"], r.get("fromCache", False))
            for r in results["musicSeperate"]),
        shifts=raw["smartContentDescriptor"]["musicSeperate"].get("shifts", 1),
        facts=None if results is None or "facts" not in results else tuple(results["facts"]),
    )


def load_job(row: Row, ttl_ms: int = 0) -> Job:
    """The job, with when its files will expire (`ttl_ms` after its end) if they still exist."""
    job = Job(
        id=row["id"], owner=row["owner"], custom_id=row["custom_id"], callback=row["callback"],
        state=State(row["state"]),
        inputs=tuple(_load_input(i) for i in json.loads(row["inputs"])),
        outputs=tuple(_load_output(o) for o in json.loads(row["outputs"])),
        created_at=row["created_at"], deadline=row["deadline"], started_at=row["started_at"],
        completed_at=row["completed_at"], attempt=row["attempt"], restarts=row["restarts"],
        error_code=row["error_code"], error_message=row["error_message"],
        callback_state=row["callback_state"], callback_attempts=row["callback_attempts"],
        callback_error=row["callback_error"], deleted_at=row["deleted_at"],
        expired_at=row["expired_at"], progress=row["progress"], lease_node=row["lease_node"],
        lease_until=row["lease_until"], publishing=bool(row["publishing"]),
        tenant=row["tenant"],
    )
    if ttl_ms and job.state.final and not (job.deleted_at or job.expired_at):
        job.files_until = job.completed_at + ttl_ms
    return job


def load_key(row: Row) -> Key:
    return Key(secret_id=row["secret_id"], name=row["name"], secret_key=row["secret_key"],
               default_content=row["default_content"], created_at=row["created_at"],
               revoked_at=row["revoked_at"])


def load_mix(row: Row) -> MixRecord:
    return MixRecord(row["job_id"], row["digest"], row["name"], json.loads(row["gains"]),
                     row["format"], row["content_id"], row["path"], row["created_at"])
