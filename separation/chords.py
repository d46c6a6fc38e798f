"""The chord sequence of a song from its harmonic stems: a pitch-class profile (essentia's HPCP)
of 25 Hz-3.5 kHz every 0.19 s, matched to major and minor triads (sevenths counted by their
triad), smoothed by a Viterbi path that pays for each change, merged into segments of at least
`MIN_SECONDS`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from separation.dsp import Float
from separation.essentia_lib import standard

# 0.37 s frames every 0.19 s at 11 kHz: a chord of one beat at 180 BPM fills one
CHORD_FRAME = 4096
CHORD_HOP = 2048
# Shapes matched to each frame, as (intervals above the root, minor triad). The sevenths are
# there because each holds another triad: Am7 (A C E G) holds C major, Cmaj7 holds E minor;
# matched as triads only, Am7 would often read as C.
CHORD_SHAPES = (((0, 4, 7), False), ((0, 3, 7), True),
                ((0, 4, 7, 11), False), ((0, 4, 7, 10), False), ((0, 3, 7, 10), True))
# What a change of chord costs the Viterbi path, in units of cosine similarity per frame: a
# chord must fit better than the one held for about SWITCH_COST / 0.05 frames to replace it.
SWITCH_COST = 0.3
# What the chords hear, measured as share of time right (benchmarks/chords.py, true stems,
# 24 songs each of the song-facts generator / of songs written otherwise):
#   HPCP harmonics 0, bass as it is     72 % / 94 %
#   harmonics 4, bass as it is          76 % / 95 %
#   harmonics 4, bass at 0.3 (-10 dB)   79 % / 95 %   <- kept
#   harmonics 8, bass at 0.15 (-16 dB)  86 % / 94 %   (a piano's F#m D A E at two beats a
#                                                      chord fell from 72 % to 61 %)
# harmonics credits a peak to the notes it may be a harmonic of: a bass note's 5th harmonic
# is a major third up and read minor chords as major; a quieter bass keeps its root without
# its harmonics. Only above 180 Hz, with the bass: 76 % / not measured.
CHORD_HARMONICS = 4
CHORD_BASS_GAIN = 0.3
MIN_SECONDS = 0.5  # shorter segments join their neighbour: a 15-minute song has at most 1800
SILENT = 1e-3  # frames under this share of the loudest frame's energy are "N" (no chord)
SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
FLAT_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
# Roots spelt as their most-used name when no key says otherwise: D♭, E♭, A♭, B♭ major, and
# C♯, F♯, G♯ minor (as key.py's names); F♯ over G♭.
PLAIN_MAJOR = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
PLAIN_MINOR = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")
NO_CHORD = -1


@dataclass(frozen=True, slots=True)
class Chord:
    """One segment: root pitch class (0 = C; `NO_CHORD` for silence) and quality, in seconds."""

    start: float
    end: float
    root: int
    minor: bool

    def name(self, flats: bool | None = None) -> str:
        """`F#m`, `Bb`, `N`: sharps or flats as the key spells them (`flats`), else plain."""
        if self.root == NO_CHORD:
            return "N"
        if flats is None:
            names = PLAIN_MINOR if self.minor else PLAIN_MAJOR
        else:
            names = FLAT_NAMES if flats else SHARP_NAMES
        return names[self.root] + ("m" if self.minor else "")


@dataclass(frozen=True, slots=True)
class Chroma:
    """12-bin pitch-class profiles (index 0 = C), one per frame, and each frame's energy."""

    frames: Float  # [n, 12]
    energies: Float  # [n]
    rate: float

    @property
    def audible(self) -> Float:
        """The frames louder than `SILENT` of the loudest."""
        if len(self.frames) == 0:
            return self.frames
        loud: Float = self.frames[self.energies > self.energies.max() * SILENT]
        return loud


def chroma(signal: Float, rate: float, harmonics: int = 0) -> Chroma:
    """HPCP of 25 Hz-3.5 kHz, whitened, every `CHORD_HOP` samples of a mono signal; each peak
    also credited to the `harmonics` notes it may be a harmonic of."""
    signal = np.ascontiguousarray(signal, dtype=np.float32)
    window = standard.Windowing(type="blackmanharris62")
    spectrum = standard.Spectrum()
    peaks = standard.SpectralPeaks(orderBy="magnitude", magnitudeThreshold=1e-5, maxPeaks=60,
                                   minFrequency=25, maxFrequency=3500, sampleRate=rate)
    whitening = standard.SpectralWhitening(maxFrequency=3500, sampleRate=rate)
    hpcp = standard.HPCP(size=12, referenceFrequency=440, bandPreset=False, minFrequency=25,
                         maxFrequency=3500, weightType="cosine", windowSize=1.0,
                         harmonics=harmonics, normalized="none", sampleRate=rate)
    frames, energies = [], []
    for start in range(0, len(signal) - CHORD_FRAME, CHORD_HOP):
        power = spectrum(window(signal[start : start + CHORD_FRAME]))
        frequencies, magnitudes = peaks(power)
        profile = hpcp(frequencies, whitening(power, frequencies, magnitudes))
        frames.append(np.roll(np.asarray(profile, dtype=np.float32), 9))  # HPCP's bin 0 is A
        energies.append(float(np.sum(np.square(power))))
    if not frames:
        return Chroma(np.zeros((0, 12), np.float32), np.zeros(0, np.float32), rate)
    return Chroma(np.stack(frames), np.asarray(energies, dtype=np.float32), rate)


def templates() -> tuple[Float, list[tuple[int, bool]]]:
    """Unit-length chord shapes and the triad (root, minor) each counts for."""
    rows, labels = [], []
    for intervals, minor in CHORD_SHAPES:
        for root in range(12):
            row = np.zeros(12, dtype=np.float32)
            row[[(root + i) % 12 for i in intervals]] = 1.0
            rows.append(row / np.linalg.norm(row))
            labels.append((root, minor))
    return np.stack(rows), labels


def triad_fit(frames: Float) -> Float:
    """[n, 24] cosine similarity of each frame with each triad (0-11 major, 12-23 minor), the
    best of its shapes (a seventh counts for its triad)."""
    shapes, labels = templates()
    unit = frames / (np.linalg.norm(frames, axis=1, keepdims=True) + 1e-12)
    similarity = unit @ shapes.T
    fit = np.zeros((len(frames), 24), dtype=np.float32)
    for column, (root, minor) in enumerate(labels):
        state = root + 12 * minor
        fit[:, state] = np.maximum(fit[:, state], similarity[:, column])
    return fit


def viterbi(fit: Float, silent: np.ndarray, cost: float = SWITCH_COST) -> np.ndarray:
    """The state path (0-23 triads, 24 no chord) that maximises the summed fit less `cost` per
    change; silent frames are no chord, and no chord fits nothing else."""
    states = fit.shape[1] + 1
    score = np.full((len(fit), states), -np.inf, dtype=np.float64)
    score[:, :-1] = np.where(silent[:, None], -np.inf, fit)
    score[:, -1] = np.where(silent, 0.0, -np.inf)
    back = np.zeros((len(fit), states), dtype=np.int64)
    total = score[0].copy()
    for t in range(1, len(fit)):
        best = int(np.argmax(total))
        switched = total[best] - cost
        stay = total >= switched
        back[t] = np.where(stay, np.arange(states), best)
        total = np.where(stay, total, switched) + score[t]
    path = np.zeros(len(fit), dtype=np.int64)
    path[-1] = int(np.argmax(total))
    for t in range(len(fit) - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def estimate_chords(found: Chroma, length: float, cost: float = SWITCH_COST) -> list[Chord]:
    """Segments covering 0-`length` seconds, consecutive ones different, each at least
    `MIN_SECONDS` (but a song shorter than that), no chord where silent. `found`: the chroma
    with `CHORD_HARMONICS`."""
    if len(found.frames) == 0:
        return [Chord(0.0, round(length, 2), NO_CHORD, False)] if length > 0 else []
    silent = found.energies <= found.energies.max() * SILENT
    path = viterbi(triad_fit(found.frames), silent, cost)
    hop = CHORD_HOP / found.rate
    # frame t covers its centre ± half a hop; the first and last segments reach the ends
    edges = [0.0] + [(t * CHORD_HOP + CHORD_FRAME / 2 - CHORD_HOP / 2) / found.rate
                     for t in range(1, len(path))] + [max(length, len(path) * hop)]
    segments: list[list[float]] = []  # [start, end, state]
    for t, state in enumerate(path):
        if segments and segments[-1][2] == state:
            segments[-1][1] = edges[t + 1]
        else:
            segments.append([edges[t], edges[t + 1], float(state)])
    segments[-1][1] = length
    return [_chord(s) for s in _merged(_without_short(segments)) if s[1] > s[0]]


def _without_short(segments: list[list[float]]) -> list[list[float]]:
    """Each segment under `MIN_SECONDS` joins the longer of its neighbours."""
    while len(segments) > 1:
        lengths = [end - start for start, end, _ in segments]
        shortest = int(np.argmin(lengths))
        if lengths[shortest] >= MIN_SECONDS:
            break
        before = lengths[shortest - 1] if shortest > 0 else -1.0
        after = lengths[shortest + 1] if shortest + 1 < len(segments) else -1.0
        if before >= after:
            segments[shortest - 1][1] = segments[shortest][1]
        else:
            segments[shortest + 1][0] = segments[shortest][0]
        del segments[shortest]
        segments = _merged(segments)
    return segments


def _merged(segments: list[list[float]]) -> list[list[float]]:
    out: list[list[float]] = []
    for start, end, state in segments:
        if out and out[-1][2] == state:
            out[-1][1] = end
        else:
            out.append([start, end, state])
    return out


def _chord(segment: list[float]) -> Chord:
    start, end, state = segment[0], segment[1], int(segment[2])
    if state == 24:
        return Chord(round(start, 2), round(end, 2), NO_CHORD, False)
    return Chord(round(start, 2), round(end, 2), state % 12, state >= 12)


def essentia_chords(found: Chroma, length: float, window: float = 2.0) -> list[Chord]:
    """essentia's `ChordsDetection` on the same frames (the benchmark's comparison): each frame
    the best triad over a `window`-second window of frames, merged as ours are."""
    if len(found.frames) == 0:
        return []
    detect = standard.ChordsDetection(hopSize=CHORD_HOP, sampleRate=found.rate, windowSize=window)
    names, _ = detect(np.roll(found.frames, -9, axis=1).astype(np.float32))  # bin 0 back to A
    silent = found.energies <= found.energies.max() * SILENT
    hop = CHORD_HOP / found.rate
    segments: list[list[float]] = []
    for t, name in enumerate(names):
        minor = name.endswith("m")
        root = name[:-1] if minor else name
        state = 24 if silent[t] else (FLAT_NAMES.index(root) if root in FLAT_NAMES
                                      else SHARP_NAMES.index(root)) + 12 * minor
        start, end = t * hop, (t + 1) * hop
        if segments and segments[-1][2] == state:
            segments[-1][1] = end
        else:
            segments.append([start, end, float(state)])
    segments[0][0], segments[-1][1] = 0.0, length
    return [_chord(s) for s in _merged(segments)]
