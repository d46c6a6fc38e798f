"""Encode a stem so that it fits a Discord upload limit."""

from __future__ import annotations

from pathlib import Path

from separation import Limits, OutputFormat, decode, encode
from separation.audio import SAMPLE_RATE

# Lossy bitrates tried from best to smallest; below 96 kbit/s stems are not worth sharing.
BITRATES = (320_000, 256_000, 192_000, 160_000, 128_000, 96_000)
LOSSY = frozenset({OutputFormat.MP3, OutputFormat.OPUS})
# Decoding a stem the service produced: its limits were already enforced there.
_TRUSTED = Limits(max_seconds=24 * 3600, max_bytes=1 << 40)


def encode_to_fit(source: Path, target: Path, fmt: OutputFormat, max_bytes: int) -> Path | None:
    """Write `source` as `fmt` to `target` within `max_bytes`; None when it cannot fit.

    Lossless formats are written once (a lower quality was not asked for); lossy ones step
    down the bitrate ladder, starting at the highest that the duration allows.
    """
    audio = decode(source, _TRUSTED)
    seconds = audio.shape[1] / SAMPLE_RATE
    candidates: tuple[int, ...] = (BITRATES[0],)
    if fmt in LOSSY:
        # 0.97: container overhead; skip bitrates that obviously cannot fit.
        budget = max_bytes * 8 * 0.97 / max(seconds, 0.001)
        candidates = tuple(b for b in BITRATES if b <= budget) or (BITRATES[-1],)
    for bitrate in candidates:
        encode(target, audio, fmt, bitrate)
        if target.stat().st_size <= max_bytes:
            return target
    target.unlink(missing_ok=True)
    return None
