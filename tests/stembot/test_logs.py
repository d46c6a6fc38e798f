"""The console script's log lines: nothing forges a record, no line holds a signature."""

from __future__ import annotations

import logging
import sys

from stembot.logs import FORMAT, EscapingFormatter

SIGNATURE = "0123456789abcdef" * 4


def formatted(message: str, *args: object, error: BaseException | None = None) -> str:
    record = logging.LogRecord("stembot.test", logging.WARNING, __file__, 1, message, args,
                               None)
    if error is not None:
        try:
            raise error
        except type(error):
            record.exc_info = sys.exc_info()
    return EscapingFormatter(FORMAT).format(record)


def test_a_signed_link_in_a_message_or_a_traceback_loses_its_signature() -> None:
    url = f"http://h/content/r/a.wav?expires=1&signature={SIGNATURE}"
    text = formatted("could not fetch %s", url,
                     error=RuntimeError(f"GET {url} failed; session 99.{SIGNATURE}.AKID"))
    assert SIGNATURE not in text
    assert "signature=<hidden>" in text and "99.<hidden>.AKID" in text


def test_a_newline_in_a_message_cannot_start_a_record() -> None:
    text = formatted("job %s", "x\n2026-01-01 stembot forged")
    assert "\n" not in text and "x\\n2026" in text
