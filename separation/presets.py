"""Stem presets: which stems each separation gives, and how many shifts it may average."""

from __future__ import annotations

import enum

MAX_SHIFTS = 8
"""Most random shifts one separation may average (each one costs a whole separation)."""


class StemPreset(enum.IntEnum):
    """Which stems a separation gives; the one stem/method enum: its value is the job
    protocol's `method` number (MusicSeperateOption), its `count` what /separate and the CLI
    offer."""

    TWO_STEMS = 1
    FOUR_STEMS = 2
    FIVE_STEMS = 3

    @classmethod
    def from_count(cls, count: int) -> StemPreset:
        """Map a stem count (one of STEM_COUNTS: 2, 4 or 5) to its preset."""
        for preset in cls:
            if preset.count == count:
                return preset
        raise ValueError(f"stems must be {_COUNTS_TEXT}, not {count}")

    @property
    def count(self) -> int:
        return len(self.stems)

    @property
    def stems(self) -> tuple[str, ...]:
        """Stem names in delivery order; `other` is the accompaniment of the protocol."""
        return _STEMS[self]


_STEMS: dict[StemPreset, tuple[str, ...]] = {
    StemPreset.TWO_STEMS: ("vocals", "other"),
    StemPreset.FOUR_STEMS: ("vocals", "drums", "bass", "other"),
    StemPreset.FIVE_STEMS: ("vocals", "drums", "bass", "piano", "other"),
}

STEM_COUNTS: tuple[int, ...] = tuple(preset.count for preset in StemPreset)
"""The stem counts one may ask for, in preset order: 2, 4 and 5."""
_COUNTS_TEXT = ", ".join(map(str, STEM_COUNTS[:-1])) + f" or {STEM_COUNTS[-1]}"


def shown_name(preset: StemPreset, stem: str) -> str:
    """The name people see: in two stems `other` is everything but vocals, the accompaniment."""
    return "accompaniment" if preset is StemPreset.TWO_STEMS and stem == "other" else stem
