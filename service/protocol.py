"""The job protocol's messages: enums, parsed requests, and the Job as sent on the wire."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any, NotRequired, TypedDict
from urllib.parse import urlsplit

from separation.presets import MAX_SHIFTS, Tone
from service.errors import InvalidParameter

MAX_CUSTOM_ID = 64  # the original: customId is *fewer than* 64 characters
MAX_ITEMS = 16  # inputs and outputs per job; the original sets no bound, a server must
MAX_TIMEOUT = 7 * 24 * 3600  # seconds; also keeps the deadline (ms) within an SQLite INTEGER


class State(enum.IntEnum):
    SUBMITTED = 1
    PROCESSING = 2
    COMPLETED = 3
    ERROR = 4
    CANCELED = 5

    @property
    def final(self) -> bool:
        return self >= State.COMPLETED


class Method(enum.IntEnum):
    """MusicSeperateOption; the values equal `separation.StemPreset`."""

    TWO_STEMS = 1
    FOUR_STEMS = 2
    FIVE_STEMS = 3


__all__ = ["Job", "Method", "State", "Tone"]


class SourceWire(TypedDict):
    contentId: str
    path: str


class InputWire(TypedDict, total=False):
    url: str
    source: SourceWire
    track: dict[str, str]  # an extension: what a page link said of its track (set by the run)


class ResultWire(TypedDict):
    tone: int
    fileName: str
    fromCache: NotRequired[bool]


class OutputWire(TypedDict):
    contentId: str
    destination: str
    inputSelectors: list[int]
    smartContentDescriptor: dict[str, dict[str, int]]
    smartContentResult: NotRequired[dict[str, Any]]


class TimingWire(TypedDict):
    createdAt: str
    startedAt: str
    completedAt: str


class CallbackStatusWire(TypedDict):
    state: str
    attempts: int
    lastError: str


class JobWire(TypedDict):
    id: str
    state: int
    customId: str
    callback: str
    inputs: list[InputWire]
    outputs: list[OutputWire]
    timing: TimingWire
    progress: NotRequired[int]
    errorCode: NotRequired[str]
    errorMessage: NotRequired[str]
    callbackStatus: NotRequired[CallbackStatusWire]
    deletedAt: NotRequired[str]
    resultsExpiredAt: NotRequired[str]
    resultsExpireAt: NotRequired[str]


@dataclass(frozen=True, slots=True)
class InputSpec:
    """Exactly one of `url` or (`content_id`, `path`)."""

    url: str = ""
    content_id: str = ""
    path: str = ""
    # site, id, title, uploader, page: what a page link said of its track, once it was read
    track: dict[str, str] | None = None

    def wire(self) -> InputWire:
        out: InputWire = {"url": self.url} if self.url else {
            "source": {"contentId": self.content_id, "path": self.path}}
        if self.track:
            out["track"] = dict(self.track)
        return out


@dataclass(frozen=True, slots=True)
class Result:
    tone: Tone
    file_name: str
    from_cache: bool = False  # the stems of an earlier, identical separation

    def wire(self) -> ResultWire:
        out: ResultWire = {"tone": int(self.tone), "fileName": self.file_name}
        if self.from_cache:
            out["fromCache"] = True
        return out


@dataclass(frozen=True, slots=True)
class OutputSpec:
    content_id: str
    destination: str
    selectors: tuple[int, ...]
    method: Method
    results: tuple[Result, ...] | None = None
    shifts: int = 1
    facts: tuple[dict[str, Any], ...] | None = None  # one per selector: SongFacts.wire()

    def wire(self) -> OutputWire:
        descriptor = {"method": int(self.method)}
        if self.shifts > 1:  # an extension: absent unless asked for, as in the original
            descriptor["shifts"] = self.shifts
        out: OutputWire = {
            "contentId": self.content_id,
            "destination": self.destination,
            "inputSelectors": list(self.selectors),
            "smartContentDescriptor": {"musicSeperate": descriptor},
        }
        if self.results is not None:
            out["smartContentResult"] = {"musicSeperate": [
                r.wire() for r in self.results
            ]}
            if self.facts is not None:  # an extension: the song facts of each input
                out["smartContentResult"]["facts"] = list(self.facts)
        return out


@dataclass(frozen=True, slots=True)
class JobRequest:
    """A validated createJobRequest."""

    custom_id: str
    callback: str
    timeout: int
    inputs: tuple[InputSpec, ...]
    outputs: tuple[OutputSpec, ...]


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
                     path=string(source, "path", f"{name}.source.path"))


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
    if method not in {m.value for m in Method}:
        raise InvalidParameter(f"{method_name} must be 1, 2 or 3")
    shifts_name = f"{name}.smartContentDescriptor.musicSeperate.shifts"
    shifts = integer(separate, "shifts", shifts_name, 1)
    if not 1 <= shifts <= MAX_SHIFTS:
        raise InvalidParameter(f"{shifts_name} must be between 1 and {MAX_SHIFTS}")
    return OutputSpec(
        content_id=string(body, "contentId", f"{name}.contentId", ""),
        destination=string(body, "destination", f"{name}.destination", "/") or "/",
        selectors=tuple(selectors),
        method=Method(method),
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
    return JobRequest(custom_id, callback, timeout or default_timeout, inputs, outputs)
