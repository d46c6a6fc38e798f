"""The key of a song from its harmonic stems: essentia's key extractor, noise refused."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from separation.dsp import Float
from separation.essentia_lib import standard
from separation.htdemucs import SAMPLE_RATE

KEY_DECIMATION = 4  # the key is read from 25 Hz-3.5 kHz: 11 kHz keeps it, at a quarter the cost
# essentia's key profiles measured on 48 rendered songs' true stems: noland, edma, shaath,
# bgate and the rest within 30-33 right; noland kept it with the bass in or out (31, 32).
KEY_PROFILE = "noland"
# The key's correlation with its profile: the same songs 0.70 or more, white noise 0.53-0.61.
# Noise can correlate better by chance (0.76 once with another profile), so the sound must also
# be tonal: the spectral flatness of 100 Hz-3.5 kHz (median over frames) is 0.56 for white
# noise and at most 0.03 for the songs.
KEY_STRENGTH_MIN = 0.65
FLATNESS_MAX = 0.2
FLATNESS_FRAME = 4096
MAJOR_NAMES = ("C", "D♭", "D", "E♭", "E", "F", "F♯", "G", "A♭", "A", "B♭", "B")
MINOR_NAMES = ("C", "C♯", "D", "E♭", "E", "F", "F♯", "G", "G♯", "A", "B♭", "B")
PITCH_CLASSES = {"C": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "F": 5, "F#": 6,
                 "Gb": 6, "G": 7, "G#": 8, "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11}


@dataclass(frozen=True, slots=True)
class Key:
    tonic: int  # pitch class, 0 = C
    minor: bool
    confidence: float  # 0-1: correlation of the song's pitch profile with the key's

    @property
    def name(self) -> str:
        """As musicians write it: `A♭ major`, `F♯ minor`."""
        names = MINOR_NAMES if self.minor else MAJOR_NAMES
        return f"{names[self.tonic]} {'minor' if self.minor else 'major'}"


def flatness(mono: Float, rate: float) -> float:
    """Median spectral flatness of 100 Hz-3.5 kHz over the audible frames: 1 flat, 0 tonal."""
    frames = len(mono) // FLATNESS_FRAME
    if frames == 0:
        return 1.0
    shaped = mono[: frames * FLATNESS_FRAME].reshape(frames, FLATNESS_FRAME)
    power = np.abs(np.fft.rfft(shaped * np.hanning(FLATNESS_FRAME), axis=1)) ** 2
    freqs = np.fft.rfftfreq(FLATNESS_FRAME, 1 / rate)
    power = power[:, (freqs >= 100) & (freqs <= 3500)] + 1e-12
    mean = power.mean(axis=1)
    audible = mean > mean.max() * 1e-3
    geometric = np.exp(np.log(power[audible]).mean(axis=1))
    return float(np.median(geometric / mean[audible]))


def estimate_key(mono: Float) -> Key | None:
    """essentia's key extractor on a mono copy at 11 kHz; None for noise or no clear key."""
    rate = SAMPLE_RATE / KEY_DECIMATION
    if flatness(mono, rate) > FLATNESS_MAX:
        return None
    name, scale, strength = standard.KeyExtractor(profileType=KEY_PROFILE, sampleRate=rate)(
        np.ascontiguousarray(mono, dtype=np.float32))
    if strength < KEY_STRENGTH_MIN or name not in PITCH_CLASSES:
        return None
    return Key(PITCH_CLASSES[name], scale == "minor", round(float(strength), 2))
