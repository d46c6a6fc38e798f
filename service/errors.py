"""API errors: each has an HTTP status and a stable code clients can branch on."""

from __future__ import annotations


class ApiError(Exception):
    """An error answered as `{"requestId", "error": {"code", "message"}}`."""

    status = 400
    code = "INVALID_REQUEST"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidJson(ApiError):
    code = "INVALID_JSON"


class UnknownAction(ApiError):
    code = "UNKNOWN_ACTION"


class InvalidParameter(ApiError):
    code = "INVALID_PARAMETER"


class BadEncoding(ApiError):
    """A body whose Content-Encoding did not decode whole; nothing was stored from it."""

    code = "BAD_CONTENT_ENCODING"


class UnsupportedEncoding(ApiError):
    status = 415
    code = "UNSUPPORTED_CONTENT_ENCODING"


class AuthFailed(ApiError):
    status = 401
    code = "AUTH_FAILED"


class PathConflict(ApiError):
    """A file stands where a folder is needed, or a folder where a file is."""

    status = 409
    code = "PATH_CONFLICT"


class JobNotFound(ApiError):
    status = 404
    code = "JOB_NOT_FOUND"


class ContentNotFound(ApiError):
    status = 404
    code = "CONTENT_NOT_FOUND"


class NotFound(ApiError):
    status = 404
    code = "NOT_FOUND"


class ContentGone(ApiError):
    """The file belonged to a job that was deleted or whose results expired."""

    status = 410
    code = "CONTENT_GONE"


class StorageFull(ApiError):
    """The data folder's disk is below STEMBOT_MIN_FREE_BYTES."""

    status = 507
    code = "STORAGE_FULL"


class StorageUnavailable(ApiError):
    """The object store (STEMBOT_STORAGE_URL) did not answer, even after retries."""

    status = 503
    code = "STORAGE_UNAVAILABLE"


class DatabaseUnavailable(ApiError):
    """The job database (STEMBOT_DATABASE_URL) did not answer, even after retries."""

    status = 503
    code = "DATABASE_UNAVAILABLE"


class MethodNotAllowed(ApiError):
    status = 405
    code = "METHOD_NOT_ALLOWED"


class PayloadTooLarge(ApiError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"


class QuotaExceeded(ApiError):
    status = 413
    code = "QUOTA_EXCEEDED"


class RequestTimeout(ApiError):
    """The client stopped sending its body; the answer also closes the connection."""

    status = 408
    code = "REQUEST_TIMEOUT"


class TooManyJobs(ApiError):
    status = 429
    code = "TOO_MANY_JOBS"


class JobFailure(Exception):
    """Why a job ended in ERROR; `code` becomes the job's `errorCode`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class StartupError(Exception):
    """The service cannot start as configured; the message says what to do, in one line."""


class JobNotCompleted(ApiError):
    """A mix or a player needs the stems of a COMPLETED job."""

    status = 409
    code = "JOB_NOT_COMPLETED"
