"""What this package uses of the service's guarded downloader, in one place.

The address rules (`is_public`, the allow-list of host:port pairs) and today's direct
download live in `service.fetch`; importing them only here keeps a move of that module to
one edit.
"""

from __future__ import annotations

from service.errors import JobFailure, UrlNotAllowed
from service.fetch import (
    Endpoint,
    FetchLimits,
    download,
    endpoint,
    endpoints,
    is_public,
    rate_floor,
    url_endpoint,
)

__all__ = ["Endpoint", "FetchLimits", "JobFailure", "UrlNotAllowed", "download", "endpoint",
           "endpoints", "is_public", "rate_floor", "url_endpoint"]
