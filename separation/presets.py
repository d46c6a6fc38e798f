"""Stem presets: which stems each separation gives, and their protocol tone numbers."""

from __future__ import annotations

import enum

MAX_SHIFTS = 8
"""Most random shifts one separation may average (each one costs a whole separation)."""


class Tone(enum.IntEnum):
    """MusicSeperateTone of the job protocol."""

    VOCALS = 1
    DRUMS = 2
    BASS = 3
    PIANO = 4
    OTHER = 5


class StemPreset(enum.IntEnum):
    """MusicSeperateOption of the job protocol; the value is the protocol's method number."""

    TWO_STEMS = 1
    FOUR_STEMS = 2
    FIVE_STEMS = 3

    @classmethod
    def from_count(cls, count: int) -> StemPreset:
        """Map a stem count (2, 4 or 5) to its preset."""
        by_count = {2: cls.TWO_STEMS, 4: cls.FOUR_STEMS, 5: cls.FIVE_STEMS}
        if count not in by_count:
            raise ValueError(f"stems must be 2, 4 or 5, not {count}")
        return by_count[count]

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

def shown_name(preset: StemPreset, stem: str) -> str:
    """The name people see: in two stems `other` is everything but vocals, the accompaniment."""
    return "accompaniment" if preset is StemPreset.TWO_STEMS and stem == "other" else stem


TONES: dict[str, Tone] = {
    "vocals": Tone.VOCALS,
    "drums": Tone.DRUMS,
    "bass": Tone.BASS,
    "piano": Tone.PIANO,
    "other": Tone.OTHER,
}
