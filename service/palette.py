"""One colour per stem, wherever people see stems: the Discord waveforms picture
(service/waveforms.py) and the web player (its page data), so vocals are the same red in both.

Mid-tone colours, readable on a light and a dark background alike."""

from __future__ import annotations

RGB = tuple[int, int, int]

STEM_COLOURS: dict[str, RGB] = {
    "vocals": (222, 74, 74),
    "drums": (232, 150, 40),
    "bass": (60, 140, 220),
    "piano": (150, 100, 220),
    "other": (60, 165, 95),
    "accompaniment": (60, 165, 95),  # a 2-stem job's `other`, by the name people see
}
# a stem of another name (none today) still gets a colour of its own, by its lane
SPARE: tuple[RGB, ...] = ((200, 80, 160), (40, 160, 170), (150, 130, 60))


def colour(name: str, index: int) -> RGB:
    """The colour of the stem `name`, the `index`-th in delivery order."""
    return STEM_COLOURS.get(name, SPARE[index % len(SPARE)])


def css(rgb: RGB) -> str:
    """`#rrggbb`, as the page's script and stylesheet take it."""
    return "#" + "".join(f"{c:02x}" for c in rgb)
