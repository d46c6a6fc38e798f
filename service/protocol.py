"""The service's side of the job protocol: the Job as stored and as sent, and the parsing of
requests, every check naming the field it refuses. The shapes both sides share are `wire`'s."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from separation.presets import MAX_SHIFTS, StemPreset
from service.errors import InvalidParameter
from wire.enums import State
from wire.jobs import InputSpec, JobWire, OutputSpec, QueueWire

MAX_CUSTOM_ID = 64  # the original: customId is *fewer than* 64 characters
MAX_ITEMS = 16  # inputs and outputs per job; the original sets no bound, a server must
MAX_TIMEOUT = 7 * 24 * 3600  # seconds; also keeps the deadline (ms) within an SQLite INTEGER
# An extension: who, inside one key, a job is for (the bot: a Discord server's id); the
# queue is shared fairly between a key's tenants as it is between keys.
TENANT = re.compile(r"[A-Za-z0-9._:-]{1,64}")


@dataclass(frozen=True, slots=True)
class JobRequest:
    """A validated createJobRequest."""

    custom_id: str
    callback: str
    timeout: int
    inputs: tuple[InputSpec, ...]
    outputs: tuple[OutputSpec, ...]
    tenant: str = ""


@dataclass(slots=True)
class Job:
    """A job as stored; `wire()` renders the protocol's Job structure."""

    id: str
    owner: str
    custom_id: str
    callback: str
    state: State
    inputs: tuple[InputSpec, ...]
    outputs: tuple[OutputSpec, ...]
    created_at: int
    deadline: int
    started_at: int = 0
    completed_at: int = 0
    attempt: int = 0
    restarts: int = 0
    error_code: str = ""
    error_message: str = ""
    callback_state: str = "NONE"
    callback_attempts: int = 0
    callback_error: str = ""
    deleted_at: int = 0  # ms; DeleteJob removed its files
    expired_at: int = 0  # ms; STEMBOT_RESULT_TTL removed its files
    files_until: int = field(default=0, compare=False)  # ms; when the TTL will remove them
    progress: int = field(default=0, compare=False)
    # The worker holding the job (claim lease), and until when (ms); 0 once released.
    lease_node: str = field(default="", compare=False)
    lease_until: int = field(default=0, compare=False)
    # COMPLETED in the store, its stems still moving from staging to their destinations:
    # clients see it PROCESSING (progress 99) until every file is in place.
    publishing: bool = field(default=False, compare=False)
    tenant: str = ""  # the extension `tenant`: "" for none
    # While it waits: its place in the fair-share order and the estimate (QueueWire).
    queue: QueueWire | None = field(default=None, compare=False)

    @property
    def shown_state(self) -> State:
        return State.PROCESSING if self.publishing else self.state

    def wire(self) -> JobWire:
        state = self.shown_state
        outputs = [replace(o, results=None, facts=None) if self.publishing else o
                   for o in self.outputs]
        job: JobWire = {
            "id": self.id,
            "state": int(state),
            "customId": self.custom_id,
            "callback": self.callback,
            "inputs": [i.wire() for i in self.inputs],
            "outputs": [o.wire() for o in outputs],
            "timing": {
                "createdAt": str(self.created_at),
                "startedAt": str(self.started_at),
                "completedAt": str(0 if self.publishing else self.completed_at),
            },
        }
        if self.tenant:
            job["tenant"] = self.tenant
        if self.queue is not None and state is State.SUBMITTED:
            job["queue"] = self.queue
        if state is State.PROCESSING:
            job["progress"] = 99 if self.publishing else self.progress
        elif state is State.COMPLETED:
            job["progress"] = 100
        if state is State.ERROR:
            job["errorCode"] = self.error_code
            job["errorMessage"] = self.error_message
        if self.callback:
            job["callbackStatus"] = {"state": self.callback_state,
                                     "attempts": self.callback_attempts,
                                     "lastError": self.callback_error}
        if self.deleted_at:
            job["deletedAt"] = str(self.deleted_at)
        if self.expired_at:
            job["resultsExpiredAt"] = str(self.expired_at)
        if self.files_until:
            job["resultsExpireAt"] = str(self.files_until)
        return job


# --- request parsing: every check names the field it refuses ------------------------------


def check_text(body: Any, name: str = "") -> None:
    """Refuse any string in a parsed JSON body, value or name, that is not valid UTF-8.

    JSON's \\ud800 escapes decode to lone surrogates, which nothing downstream can encode
    (SQLite, HMACs, file names). Walks without recursion: the parser allows deep nesting.
    """
    stack: list[tuple[Any, str]] = [(body, name)]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            if not _utf8(value):
                raise InvalidParameter(f"{where or 'the body'} is not valid UTF-8 text")
        elif isinstance(value, dict):
            for key, item in value.items():
                if not _utf8(key):
                    raise InvalidParameter(
                        f"{where or 'the body'} has a field name that is not valid UTF-8 text")
                stack.append((item, f"{where}.{key}" if where else key))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{index}]") for index, item in enumerate(value))


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def obj(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidParameter(f"{name} must be an object")
    return value


def string(body: dict[str, Any], key: str, name: str, default: str | None = None) -> str:
    value = body.get(key, default)
    if value is None:
        raise InvalidParameter(f"{name} is required")
    if not isinstance(value, str):
        raise InvalidParameter(f"{name} must be a string")
    if "\x00" in value:  # PostgreSQL cannot store it; SQLite would: one rule for both
        raise InvalidParameter(f"{name} must not contain NUL characters")
    return value


def integer(body: dict[str, Any], key: str, name: str, default: int) -> int:
    value = body.get(key, default)
    # bool is an int in Python but never a valid protocol integer
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidParameter(f"{name} must be an integer")
    return value


def items(body: dict[str, Any], key: str, name: str) -> list[Any]:
    value = body.get(key)
    if not isinstance(value, list) or not value:
        raise InvalidParameter(f"{name} must be a non-empty array")
    if len(value) > MAX_ITEMS:
        raise InvalidParameter(f"{name} has more than {MAX_ITEMS} items")
    return value


def http_url(value: str, name: str) -> str:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (a malformed port raises here, as '[::1' does above)
    except ValueError:
        raise InvalidParameter(f"{name} is not a well-formed URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParameter(f"{name} must be an http or https URL")
    return value


def parse_input(raw: Any, name: str) -> InputSpec:
    body = obj(raw, name)
    has_url, has_source = "url" in body, "source" in body
    if has_url == has_source:
        raise InvalidParameter(f"{name} needs exactly one of url or source")
    if has_url:
        return InputSpec(url=http_url(string(body, "url", f"{name}.url"), f"{name}.url"))
    source = obj(body["source"], f"{name}.source")
    return InputSpec(content_id=string(source, "contentId", f"{name}.source.contentId"),
                     path=string(source, "path", f"{name}.source.path"),
                     track=parse_track(body.get("track"), f"{name}.track"))


# The most characters each field of a request's `track` label may hold.
TRACK_FIELDS = {"site": 32, "id": 200, "title": 300, "uploader": 200, "page": 2048}


def parse_track(raw: Any, name: str) -> dict[str, str] | None:
    """A request's own label for an uploaded input (the bot's checked page link): shown on
    the service's pages, never trusted by the result cache, which knows uploads by digest."""
    if raw is None:
        return None
    body = obj(raw, name)
    unknown = sorted(set(body) - set(TRACK_FIELDS))
    if unknown:
        raise InvalidParameter(f"{name}.{unknown[0]} is not a field of a track; known: "
                               f"{', '.join(TRACK_FIELDS)}")
    track = {key: string(body, key, f"{name}.{key}", "") for key in TRACK_FIELDS}
    if not track["title"].strip():
        raise InvalidParameter(f"{name}.title is required")
    for key, most in TRACK_FIELDS.items():
        if len(track[key]) > most:
            raise InvalidParameter(f"{name}.{key} is longer than {most} characters")
    if track["page"]:
        http_url(track["page"], f"{name}.page")
    return track


def parse_output(raw: Any, name: str, input_count: int) -> OutputSpec:
    body = obj(raw, name)
    selectors = items(body, "inputSelectors", f"{name}.inputSelectors")
    for index, selector in enumerate(selectors):
        if not isinstance(selector, int) or isinstance(selector, bool):
            raise InvalidParameter(f"{name}.inputSelectors[{index}] must be an integer")
        if not 0 <= selector < input_count:
            raise InvalidParameter(
                f"{name}.inputSelectors[{index}] is {selector}: inputs are 0..{input_count - 1}")
    descriptor = obj(body.get("smartContentDescriptor"), f"{name}.smartContentDescriptor")
    separate = obj(descriptor.get("musicSeperate"), f"{name}.smartContentDescriptor.musicSeperate")
    method_name = f"{name}.smartContentDescriptor.musicSeperate.method"
    method = integer(separate, "method", method_name, 0)
    if method not in {m.value for m in StemPreset}:
        raise InvalidParameter(f"{method_name} must be 1, 2 or 3")
    shifts_name = f"{name}.smartContentDescriptor.musicSeperate.shifts"
    shifts = integer(separate, "shifts", shifts_name, 1)
    if not 1 <= shifts <= MAX_SHIFTS:
        raise InvalidParameter(f"{shifts_name} must be between 1 and {MAX_SHIFTS}")
    return OutputSpec(
        content_id=string(body, "contentId", f"{name}.contentId", ""),
        destination=string(body, "destination", f"{name}.destination", "/") or "/",
        selectors=tuple(selectors),
        method=StemPreset(method),
        shifts=shifts,
    )


def parse_create(raw: Any, default_timeout: int) -> JobRequest:
    """Validate a createJobRequest; raises InvalidParameter naming the first bad field."""
    body = obj(raw, "createJobRequest")
    custom_id = string(body, "customId", "customId", "")
    if len(custom_id) >= MAX_CUSTOM_ID:
        raise InvalidParameter(f"customId must be fewer than {MAX_CUSTOM_ID} characters")
    callback = string(body, "callback", "callback", "")
    if callback:
        http_url(callback, "callback")
    timeout = integer(body, "timeout", "timeout", 0)
    if timeout < 0:
        raise InvalidParameter("timeout must not be negative")
    if timeout > MAX_TIMEOUT:
        raise InvalidParameter(f"timeout must be at most {MAX_TIMEOUT} seconds (7 days)")
    inputs = tuple(parse_input(r, f"inputs[{i}]")
                   for i, r in enumerate(items(body, "inputs", "inputs")))
    outputs = tuple(parse_output(r, f"outputs[{i}]", len(inputs))
                    for i, r in enumerate(items(body, "outputs", "outputs")))
    tenant = parse_tenant(body, "tenant", "tenant")
    return JobRequest(custom_id, callback, timeout or default_timeout, inputs, outputs, tenant)


def parse_tenant(body: dict[str, Any], key: str, name: str) -> str:
    """The optional `tenant`: absent is "" (none); else 1-64 characters of A-Za-z0-9._:-"""
    if key not in body:
        return ""
    if body[key] is None:
        raise InvalidParameter(f"{name} must be a string")
    value = string(body, key, name)
    if not TENANT.fullmatch(value):
        raise InvalidParameter(f"{name} must be 1 to 64 characters of A-Z, a-z, 0-9, '.',"
                               " '_', ':' or '-'")
    return value
