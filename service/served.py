"""How stored files are served: never as a document or a script on the service's origin.

Anyone with a key uploads any bytes under any name, and a signed link opens them in a
browser; so the server picks the type from a short allow-list, never from the name alone.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from urllib.parse import quote

# Audio the player streams: the only types a browser may show in place ("inline").
AUDIO_TYPES = {
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".mp3": "audio/mpeg",
    ".opus": "audio/ogg",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".weba": "audio/webm",
}
OTHER = "application/octet-stream"
# No script, style, frame or plugin; `sandbox` gives a document that somehow renders an
# opaque origin, so it reaches neither this origin's storage nor its cookies.
SANDBOX = "default-src 'none'; sandbox"


def content_type(name: str) -> str:
    """The allow-listed audio type of the name's extension, else opaque bytes."""
    return AUDIO_TYPES.get(PurePosixPath(name).suffix.lower(), OTHER)


def disposition(kind: str, name: str) -> str:
    """`inline` for audio, else `attachment`: a download, never a page. RFC 6266 names."""
    how = "inline" if kind.startswith("audio/") or kind == "image/png" else "attachment"
    plain = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_"
                    for c in name)
    return f"{how}; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


def file_headers(rel: str, kind: str | None = None) -> dict[str, str]:
    """The headers of every stored file's answer (the content routes, signed links, mixes)."""
    name = PurePosixPath(rel).name
    kind = kind or content_type(name)
    return {"Content-Type": kind, "Content-Disposition": disposition(kind, name),
            "X-Content-Type-Options": "nosniff", "Content-Security-Policy": SANDBOX,
            "Cache-Control": "private, no-store"}
