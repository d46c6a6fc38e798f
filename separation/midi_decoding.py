"""Posteriorgrams to notes, per kind of stem: Basic Pitch's decoding, then ours.

The model (separation/midi.py) gives, per 11.6 ms frame and piano key, the probability that a
note sounds and that one starts. Notes are read from those as Basic Pitch does (onset peaks
followed while the key sounds, then its melodia trick), then tuned per stem on rendered songs
(benchmarks/midi_quality.py): a pitch range, thresholds, a minimum length, one note at a time
for bass and voice, octave checks, the attack found in the audio itself, the tempo's grid.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from scipy.ndimage import maximum_filter1d

from separation.dsp import Float
from separation.midi_file import Note

MODEL_RATE = 22_050
HOP = 256  # samples per frame
FRAME = HOP / MODEL_RATE  # seconds
LOWEST_KEY = 21  # the model's first bin: A0
KEYS = 88
ATTACK_DB = 3.0  # a rise this steep in 6 ms is an attack

Bool = npt.NDArray[np.bool_]


class UnpitchedStemError(ValueError):
    """Drums have no pitches to write."""


@dataclass(frozen=True, slots=True)
class Decoding:
    """How posteriorgrams become notes for one kind of stem.

    `shift` is added to every onset (s): the model hears low notes late, its long windows
    centre after the attack. `attack` looks for the attack in the audio's own envelope within
    that many seconds before the model's onset. `snap` moves an onset onto the song's
    sixteenth-note grid when it lies within that many seconds of it (0: never).
    """

    low: int = LOWEST_KEY
    high: int = LOWEST_KEY + KEYS - 1
    onset_threshold: float = 0.5
    frame_threshold: float = 0.3
    min_seconds: float = 0.1277
    infer_onsets: bool = True
    melodia: bool = True  # notes found in the frames alone, without a clear onset
    energy_tolerance: int = 11  # frames under the frame threshold that end a note
    peak_reach: int = 1  # an onset is the largest of its key this many frames either way
    monophonic: bool = False
    octave_check: bool = False
    octave_down: float = 0.0  # a note whose key an octave down sounds this much as strongly
    repeat_ratio: float = 0.0  # a re-onset while the note holds must reach this over its frame
    shift: float = 0.0
    low_shift: float = 0.0  # extra seconds added per octave below MIDI 48 (E1 is 1.67 octaves)
    attack: float = 0.0
    snap: float = 0.0
    program: int = 0  # General MIDI program of the track


DECODING_VERSION = 1  # raised with any change to DECODINGS: made files are made again
BASIC_PITCH = Decoding()
"""Basic Pitch's own defaults: the baseline the stems' decodings are measured against."""

# Chosen by `python -m benchmarks.midi_quality --tune` on its `tune` songs (never the
# reported ones): the mean F1 of the separated and the true stems.
DECODINGS: dict[str, Decoding] = {
    # one note at a time; onsets from 0.3 (the lowest keys are heard weakly), the attack
    # found in the audio within 60 ms, a note moved down an octave when the key below sounds
    # half as strongly, a re-onset while the key holds on ignored unless it outgrows the hold
    "bass": Decoding(low=23, high=67, onset_threshold=0.3, frame_threshold=0.3,
                     min_seconds=0.05, melodia=False, peak_reach=5, monophonic=True,
                     octave_check=True, octave_down=0.5, repeat_ratio=1.0, shift=-0.01,
                     attack=0.06, program=33),
    # stricter thresholds than Basic Pitch's, and no notes without an onset
    "piano": Decoding(onset_threshold=0.6, frame_threshold=0.4, melodia=False, program=0),
    "vocals": Decoding(low=36, high=84, min_seconds=0.09, peak_reach=3, monophonic=True,
                       repeat_ratio=0.8, shift=-0.03, snap=0.04, program=52),
    "other": Decoding(onset_threshold=0.6, frame_threshold=0.4, melodia=False, program=0),
}
DECODINGS["accompaniment"] = DECODINGS["other"]
UNPITCHED = frozenset({"drums"})


def decoding_for(stem: str) -> Decoding:
    """The stem's decoding; drums are refused (UnpitchedStemError)."""
    if stem in UNPITCHED:
        raise UnpitchedStemError(f"{stem} are not pitched: there are no notes to write")
    return DECODINGS.get(stem, DECODINGS["other"])


@dataclass(frozen=True, slots=True)
class Posteriors:
    """Per frame (rows, FRAME seconds apart from 0) and key (columns, A0 up)."""

    note: Float
    onset: Float
    envelope: Float  # the audio's RMS per frame, for finding attacks


def decode_notes(post: Posteriors, decoding: Decoding, bpm: float | None = None) -> list[Note]:
    """Notes from the posteriorgrams: onsets, then each one followed while its key sounds."""
    frames = post.note.copy()
    onsets = post.onset.copy()
    low, high = decoding.low - LOWEST_KEY, decoding.high - LOWEST_KEY + 1
    frames[:, :low] = 0
    frames[:, high:] = 0
    onsets[:, :low] = 0
    onsets[:, high:] = 0
    if decoding.infer_onsets:
        onsets = _inferred_onsets(onsets, frames)
    events = _track(frames, onsets, decoding)
    if decoding.octave_down > 0:
        events = _octave_down(events, post.note, decoding)
    if decoding.octave_check:
        events = _octave_checked(events, post.note)
    if decoding.monophonic:
        events = _monophonic(events)
    notes = [_timed(event, post, decoding) for event in events]
    if decoding.snap > 0 and bpm:
        notes = _snapped(notes, bpm, decoding.snap)
    return sorted(notes, key=lambda n: (n.start, n.pitch))


Event = tuple[int, int, int, float]  # start frame, end frame, key index, amplitude


def _inferred_onsets(onsets: Float, frames: Float, n_diff: int = 2) -> Float:
    """Basic Pitch's: onsets where a key's frame activation jumps, besides the predicted ones."""
    diffs = []
    for n in range(1, n_diff + 1):
        shifted = np.concatenate([np.zeros((n, frames.shape[1]), np.float32), frames])
        diffs.append(shifted[n:] - shifted[:-n])
    jump = np.maximum(np.min(diffs, axis=0), 0)
    jump[:n_diff] = 0
    top = float(jump.max())
    if top > 0:
        jump = jump * (float(onsets.max()) / top)
    out: Float = np.maximum(onsets, jump)
    return out


def _peaks(onsets: Float, reach: int) -> Bool:
    """Onsets that are the strict maximum of their key within `reach` frames either way
    (1: Basic Pitch's scipy.signal.argrelmax); before the first frame counts as silence."""
    padded = np.concatenate([np.zeros((1, onsets.shape[1]), np.float32), onsets])
    if reach == 1:
        out = np.zeros(padded.shape, dtype=bool)
        out[1:-1] = (padded[1:-1] > padded[:-2]) & (padded[1:-1] > padded[2:])
        return out[1:]
    top = maximum_filter1d(padded, size=2 * reach + 1, axis=0, mode="constant")
    peaks: Bool = (padded >= top) & (padded > 0)
    return peaks[1:]


def _track(frames: Float, onsets: Float, decoding: Decoding) -> list[Event]:
    """From each onset peak (latest first), the note runs while its key stays over the frame
    threshold (gaps up to `energy_tolerance`); then, with `melodia`, notes grown from the
    strongest frames left."""
    n = frames.shape[0]
    min_frames = round(decoding.min_seconds / FRAME)
    tolerance = decoding.energy_tolerance
    energy = frames.copy()
    peaks = _peaks(onsets, decoding.peak_reach) & (onsets >= decoding.onset_threshold)
    times, keys = np.nonzero(peaks)
    events: list[Event] = []
    below = energy < decoding.frame_threshold
    for start, key in zip(times[::-1].tolist(), keys[::-1].tolist(), strict=True):
        if start >= n - 1:
            continue
        if decoding.repeat_ratio > 0 and start > 0 and \
                onsets[start, key] < decoding.repeat_ratio * frames[start - 1, key]:
            continue  # the key held on: a bump in a sustained note, not a new one
        end = _run_end(below[:, key], start + 1, tolerance)
        if end - start <= min_frames:
            continue
        energy[start:end, max(0, key - 1): key + 2] = 0
        below[start:end, max(0, key - 1): key + 2] = True
        events.append((start, end, key, float(frames[start:end, key].mean())))
    if decoding.melodia:
        events += _melodia(frames, energy, decoding, min_frames)
    return events


def _run_end(below: Bool, start: int, tolerance: int) -> int:
    """The first frame after `start` from which `tolerance` frames in a row are below the
    threshold (or the end), as Basic Pitch ends a note."""
    n = len(below)
    run = 0
    i = start
    while i < n - 1 and run < tolerance:
        run = run + 1 if below[i] else 0
        i += 1
    return i - run


def _melodia(frames: Float, energy: Float, decoding: Decoding, min_frames: int) -> list[Event]:
    """Basic Pitch's melodia trick: grow notes both ways from the strongest frame left."""
    n = frames.shape[0]
    threshold, tolerance = decoding.frame_threshold, decoding.energy_tolerance
    events: list[Event] = []
    while True:
        flat = int(np.argmax(energy))
        middle, key = divmod(flat, energy.shape[1])
        if energy[middle, key] <= threshold:
            return events
        energy[middle, key] = 0
        ends = []
        for direction in (1, -1):
            i, run = middle + direction, 0
            while 0 < i < n - 1 and run < tolerance:
                run = run + 1 if energy[i, key] < threshold else 0
                energy[i, max(0, key - 1): key + 2] = 0
                i += direction
            ends.append(i - direction - direction * run)
        end, start = ends[0], ends[1]
        if end - start <= min_frames:
            continue
        events.append((start, end, key, float(frames[start:end, key].mean())))


def _octave_down(events: list[Event], note: Float, decoding: Decoding) -> list[Event]:
    """A low note heard an octave up: the model's lowest keys are weak, and a bass's second
    harmonic is often louder than its fundamental. Moved down where the key an octave below
    sounds nearly as strongly through the note."""
    low = decoding.low - LOWEST_KEY
    out = []
    for start, end, key, amplitude in events:
        if key - 12 >= low:
            below = float(note[start:end, key - 12].mean())
            if below >= decoding.octave_down * float(note[start:end, key].mean()):
                key, amplitude = key - 12, below
        out.append((start, end, key, amplitude))
    return out


def _octave_checked(events: list[Event], note: Float) -> list[Event]:
    """Drop a note an octave above (or below) a louder one that starts with it: a harmonic
    (or a weak subharmonic) of the one note really played."""
    kept: list[Event] = []
    for event in events:
        start, end, key, amplitude = event
        shadowed = False
        for other in events:
            o_start, o_end, o_key, o_amplitude = other
            if abs(o_key - key) != 12 or o_end <= start or o_start >= end:
                continue
            overlap = min(end, o_end) - max(start, o_start)
            if overlap < 0.5 * (end - start):
                continue
            if o_amplitude > amplitude or (o_amplitude == amplitude and o_key < key):
                shadowed = True
                break
        if not shadowed:
            kept.append(event)
    return kept


def _monophonic(events: list[Event]) -> list[Event]:
    """One note at a time: of notes starting together the strongest stays, and a note ends
    where the next one starts."""
    ordered = sorted(events, key=lambda e: (e[0], -e[3]))
    out: list[Event] = []
    together = 3  # frames: notes this close start together
    for event in ordered:
        if out and event[0] - out[-1][0] < together:
            if event[3] > out[-1][3]:
                out[-1] = event
            continue
        if out and out[-1][1] > event[0]:
            start, _, key, amplitude = out[-1]
            out[-1] = (start, event[0], key, amplitude)
        out.append(event)
    return out


def _timed(event: Event, post: Posteriors, decoding: Decoding) -> Note:
    start, end, key, amplitude = event
    pitch = key + LOWEST_KEY
    shift = decoding.shift + decoding.low_shift * max(0.0, (48 - pitch) / 12)
    onset = start * FRAME + shift
    if decoding.attack > 0:
        onset = _attack(post.envelope, onset, decoding.attack)
    velocity = int(np.clip(round(127 * amplitude), 1, 127))
    return Note(max(0.0, onset), max(onset + FRAME, end * FRAME + shift), pitch, velocity)


def _attack(envelope: Float, onset: float, reach: float) -> float:
    """The steepest rise of the audio's loudness (dB over 6 ms) within `reach` s of `onset`,
    either way: the network hears a window, so its onsets come early or late by the
    instrument's attack; the model's own onset where the loudness does not rise."""
    step = FRAME / 4
    first = max(0, int((onset - reach) / step))
    last = min(len(envelope) - 3, int((onset + reach) / step))
    if last <= first:
        return onset
    level = 20 * np.log10(envelope[first: last + 3] + 1e-5)
    rise = level[2:] - level[:-2]
    best = int(np.argmax(rise))
    if rise[best] < ATTACK_DB:
        return onset
    return (first + best + 1) * step


def _snapped(notes: list[Note], bpm: float, tolerance: float) -> list[Note]:
    """Onsets within `tolerance` of the sixteenth-note grid moved onto it; the grid's phase is
    the one that most onsets agree on."""
    if not notes:
        return notes
    grid = 60.0 / bpm / 4
    starts = np.array([n.start for n in notes])
    angles = 2 * np.pi * starts / grid
    phase = float(np.angle(np.mean(np.exp(1j * angles)))) / (2 * np.pi) * grid
    out = []
    for note in notes:
        nearest = round((note.start - phase) / grid) * grid + phase
        if abs(nearest - note.start) <= tolerance and nearest >= 0:
            moved = nearest - note.start
            note = replace(note, start=nearest, end=max(nearest + FRAME, note.end + moved))
        out.append(note)
    return out
