"""The song facts as one line of text; light to import (the bot has no estimators)."""

from __future__ import annotations

from typing import Any


def line(facts: dict[str, Any]) -> str:
    """One line from the wire shape: `118 BPM · A♭ major · −9.8 LUFS`."""
    tempo, key, mix = facts.get("tempo"), facts.get("key"), facts["loudness"]["mix"]
    parts = [f"{round(tempo['bpm'])} BPM" if tempo else "tempo unclear",
             key["name"] if key else "key unclear",
             f"{mix:.1f} LUFS".replace("-", "−") if mix is not None else "silent"]
    return " · ".join(parts)
