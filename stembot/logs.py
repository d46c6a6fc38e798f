"""Logging for the console script: one format, no record can forge a line of its own, and no
line holds a link signature (an error's text or a traceback may quote a signed URL)."""

from __future__ import annotations

import logging
import re

FORMAT = "%(asctime)s %(name)s %(message)s"
# C0, DEL, C1, and the Unicode line and paragraph separators
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


# a signed link's or session's signature: 64 hex digits after `signature=` or in a token
_SIGNATURE = re.compile(r"(signature=|\.)[0-9a-f]{64}\b", re.IGNORECASE)


def escape(text: str) -> str:
    """Control characters as Python escapes: a newline becomes the two characters `\\n`;
    signatures hidden."""
    text = _SIGNATURE.sub(lambda found: found.group(1) + "<hidden>", text)
    return _CONTROL.sub(lambda found: found.group().encode("unicode_escape").decode(), text)


class EscapingFormatter(logging.Formatter):
    """Escapes what a caller can put in a record (a path, a header, an error's text), so
    every line that starts at column 0 is a genuine record; tracebacks stay readable."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape(super().formatMessage(record))

    def formatException(self, ei: logging._SysExcInfoType) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


def _indented(text: str) -> str:
    # An exception's message may hold a newline: indented, its rest cannot pass for a record.
    return "\n".join("    " + escape(line) for line in text.splitlines())


def configure(level: int = logging.INFO) -> None:
    """The root logger to stderr through the escaping formatter; covers every logger."""
    handler = logging.StreamHandler()
    handler.setFormatter(EscapingFormatter(FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
