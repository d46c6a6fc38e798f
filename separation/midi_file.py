"""Notes as Standard MIDI Files: written at the song's tempo, read back by tests and benchmarks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PPQ = 480
DEFAULT_BPM = 120.0


@dataclass(frozen=True, slots=True)
class Note:
    start: float  # seconds
    end: float
    pitch: int  # MIDI key
    velocity: int  # 1-127


def write_midi(path: Path, notes: list[Note], bpm: float | None, program: int = 0,
               name: str = "") -> Path:
    """A type-1 Standard MIDI File: a tempo track at the song's tempo, one track of notes.

    With the song's tempo the notes fall on a DAW's bars and beats; without one, 120 BPM.
    """
    import mido

    tempo = bpm if bpm and bpm > 0 else DEFAULT_BPM
    ticks_per_second = PPQ * tempo / 60.0
    midi = mido.MidiFile(type=1, ticks_per_beat=PPQ)
    meta = mido.MidiTrack()
    meta.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo), time=0))
    meta.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    meta.append(mido.MetaMessage("end_of_track", time=0))
    track = mido.MidiTrack()
    if name:
        track.append(mido.MetaMessage("track_name", name=name, time=0))
    track.append(mido.Message("program_change", program=program, channel=0, time=0))
    events: list[tuple[int, int, int, int]] = []  # tick, 0 off / 1 on, pitch, velocity
    for note in notes:
        on = round(note.start * ticks_per_second)
        off = max(on + 1, round(note.end * ticks_per_second))
        events += [(on, 1, note.pitch, note.velocity), (off, 0, note.pitch, 0)]
    now = 0
    for tick, kind, pitch, velocity in sorted(events):  # offs first at the same tick
        message = "note_on" if kind else "note_off"
        track.append(mido.Message(message, note=pitch, velocity=velocity, channel=0,
                                  time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    midi.tracks += [meta, track]
    midi.save(str(path))
    return path


def read_midi(path: Path) -> tuple[list[Note], float]:
    """The notes of a MIDI file (seconds, tempo changes followed) and its first tempo."""
    import mido

    midi = mido.MidiFile(str(path))
    bpm = next((mido.tempo2bpm(m.tempo) for track in midi.tracks for m in track
                if m.type == "set_tempo"), DEFAULT_BPM)
    notes: list[Note] = []
    sounding: dict[tuple[int, int], tuple[float, int]] = {}
    now = 0.0
    for message in midi:  # merged tracks, `time` in seconds
        now += message.time
        if message.type == "note_on" and message.velocity > 0:
            sounding[message.channel, message.note] = (now, message.velocity)
        elif message.type in ("note_off", "note_on"):
            begun = sounding.pop((message.channel, message.note), None)
            if begun is not None:
                notes.append(Note(begun[0], now, message.note, begun[1]))
    return sorted(notes, key=lambda n: (n.start, n.pitch)), float(bpm)
