"""The stems' waveforms stacked in one PNG, drawn with numpy and written with zlib (no
imaging library: peak bars on a plain background are all it takes)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from separation.audio import decode
from service.palette import RGB, colour

WIDTH, LANE, GAP = 800, 72, 6  # pixels
BACKGROUND = (255, 255, 255)


def peaks(path: Path, width: int = WIDTH) -> np.ndarray:
    """The loudest sample of each of `width` columns, both channels, scaled to the stem's own
    peak so that quiet stems still show their shape."""
    audio = np.abs(decode(path)).max(axis=0)
    columns = np.array_split(audio, width) if audio.size >= width else [audio] * width
    heights = np.array([c.max() if c.size else 0.0 for c in columns], dtype=np.float32)
    loudest = float(heights.max()) if heights.size else 0.0
    return heights / loudest if loudest > 0 else heights


def image(lanes: list[np.ndarray], colours: list[RGB]) -> np.ndarray:
    """RGB pixels: one lane per stem in its colour, bars centred on the lane's middle line."""
    height = len(lanes) * (LANE + GAP) - GAP
    pixels = np.full((height, WIDTH, 3), BACKGROUND, dtype=np.uint8)
    rows = np.arange(LANE)[:, None]
    for index, heights in enumerate(lanes):
        half = np.maximum(1, np.round(heights * (LANE / 2 - 2))).astype(int)
        middle = LANE // 2
        bars = (rows >= middle - half[None, :]) & (rows <= middle + half[None, :])
        top = index * (LANE + GAP)
        pixels[top:top + LANE][bars] = colours[index]
    return pixels


def png(pixels: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of the pixels."""
    height, width, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[row].tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def waveforms_png(stems: list[tuple[str, Path]]) -> bytes:
    """Decode each (name, file) in turn (one in memory at a time) and draw them stacked, each
    in its stem's colour (service/palette.py, as in the player)."""
    colours = [colour(name, index) for index, (name, _) in enumerate(stems)]
    return png(image([peaks(path) for _, path in stems], colours))
