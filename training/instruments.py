"""Which General MIDI programs count as piano, which play the rest, and which soundfonts train.

Piano here means the keyboard sound a listener calls piano: GM 0-5 (acoustic grand, bright
acoustic, electric grand, honky-tonk, electric piano 1 (Rhodes), electric piano 2 (FM)).
Harpsichord and clavinet are left in `other`: they are plucked, not hammered.
"""

from __future__ import annotations

from pathlib import Path

PIANO_PROGRAMS: tuple[int, ...] = (0, 1, 2, 3, 4, 5)

# the instruments a piano meets in `other`, grouped so each arrangement can draw a mix
OTHER_FAMILIES: dict[str, tuple[int, ...]] = {
    "keys": (6, 7, 8, 11, 12, 13),  # harpsichord, clavinet, celesta, vibraphone, marimba, xylo
    "organ": (16, 17, 18, 19, 20, 21),
    "guitar": (24, 25, 26, 27, 28, 29, 30),
    "strings": (40, 41, 42, 44, 45, 46, 48, 49, 50, 51),
    "choir": (52, 53, 54),
    "brass": (56, 57, 58, 59, 60, 61, 62, 63),
    "reed": (64, 65, 66, 67, 68, 69, 70, 71),
    "pipe": (72, 73, 74, 75, 79),
    "synth_lead": (80, 81, 82, 83, 84, 85, 87),
    "synth_pad": (88, 89, 90, 91, 92, 94, 95),
}
BASS_PROGRAMS: tuple[int, ...] = (32, 33, 34, 35, 36, 38, 39)

SOUNDFONT_DIRS = (Path("/usr/share/sounds/sf2"), Path("/usr/share/sounds/sf3"))

Soundfonts = tuple[tuple[str, float], ...]  # (file name, weight of its draw)

# TimGM6mb is never heard in training (evaluation only). v1 and the first 600 songs of
# datasets/piano2 drew from three sets of samples:
TRAIN_SOUNDFONTS: Soundfonts = (
    ("FluidR3_GM.sf2", 0.4), ("MuseScore_General.sf3", 0.35), ("sf_GMbank.sf2", 0.25)
)
# every General MIDI soundfont Debian packages but the held-out one: more pianos, and one
# (OPL3) that is FM synthesis instead of samples. FluidR3's mono build repeats much of
# FluidR3_GM, so both draw less; FluidR3_GS (fluid-soundfont-gs) is left out: its bank
# layout renders silence through separation.synth's program changes.
EVERY_SOUNDFONT: Soundfonts = (
    ("FluidR3_GM.sf2", 0.15), ("FluidR3Mono_GM.sf3", 0.1),
    ("MuseScore_General.sf3", 0.15), ("MuseScore_General_Full.sf3", 0.15),
    ("sf_GMbank.sf2", 0.2), ("OPL-3_FM_128M.sf2", 0.25),
)
HELD_OUT_SOUNDFONT = "TimGM6mb.sf2"
DEBIAN_PACKAGES = (
    "fluid-soundfont-gm",
    "fluidr3mono-gm-soundfont",
    "musescore-general-soundfont",
    "csound-soundfont",
    "opl3-soundfont",
    "timgm6mb-soundfont",
)


def soundfont_path(name: str) -> Path:
    """The installed file for a soundfont name, or a clear error naming the packages."""
    for folder in SOUNDFONT_DIRS:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(
        f"soundfont {name} not found: apt-get install {' '.join(DEBIAN_PACKAGES)}"
    )
