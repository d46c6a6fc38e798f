"""The protocol's numbered vocabulary: job states and stem tones."""

from __future__ import annotations

import enum


class State(enum.IntEnum):
    SUBMITTED = 1
    PROCESSING = 2
    COMPLETED = 3
    ERROR = 4
    CANCELED = 5

    @property
    def final(self) -> bool:
        return self >= State.COMPLETED


class Tone(enum.IntEnum):
    """MusicSeperateTone of the job protocol."""

    VOCALS = 1
    DRUMS = 2
    BASS = 3
    PIANO = 4
    OTHER = 5


TONES: dict[str, Tone] = {
    "vocals": Tone.VOCALS,
    "drums": Tone.DRUMS,
    "bass": Tone.BASS,
    "piano": Tone.PIANO,
    "other": Tone.OTHER,
}
"""The engine's stem names (`StemPreset.stems`) to their tones."""
