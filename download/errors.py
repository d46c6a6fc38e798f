"""What a guarded download refuses with; the service and the bot each say it their own way."""

from __future__ import annotations


class UrlNotAllowed(Exception):
    """The URL leads somewhere the guard refuses: not http(s), or a non-public address.

    The job service answers it as 400 URL_NOT_ALLOWED at CreateJob.
    """

    code = "URL_NOT_ALLOWED"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DownloadError(Exception):
    """A download did not complete; `code` says why, as a job's `errorCode` would:
    DOWNLOAD_FAILED, DOWNLOAD_TIMEOUT, URL_NOT_ALLOWED or INPUT_TOO_LARGE."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class BodyTooLarge(Exception):
    """A streamed body went past its byte limit."""
