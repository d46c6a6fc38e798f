"""Stems to MIDI: a rendered bass line read back note for note, silence, drums, the file's tempo."""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np
import pytest

from separation import OutputFormat, encode, synth
from separation.midi import Transcriber
from separation.midi_decoding import UnpitchedStemError, decoding_for
from separation.midi_file import Note, read_midi, write_midi
from separation.runtime import RuntimeConfig, RuntimeName

BPM = 112.0
# Measured 0.89 on this line (OpenVINO bf16 and ONNX Runtime f32 alike); Basic Pitch's own
# decoding gets 0.58-0.59 on such low notes. The floor is the target for bass.
BASS_F1_FLOOR = 0.8


def bass_line() -> synth.Part:
    """Eight bars of a fingered bass (GM 33) over E1-E2: roots, fifths, octave jumps, eighths
    and quarters, some notes repeated: what trips a transcriber on the lowest keys."""
    roots = [28, 33, 31, 26, 28, 35, 33, 31]
    notes = []
    for bar, root in enumerate(roots):
        t = bar * 4.0
        pattern = [(0.0, 1.0, root), (1.0, 0.5, root), (1.5, 0.5, root + 7),
                   (2.0, 1.0, root + 12), (3.0, 0.5, root + 7), (3.5, 0.5, root)]
        notes += [synth.Note(t + start, length * 0.9, pitch, 100)
                  for start, length, pitch in pattern]
    return synth.Part(33, notes, channel=2)


def seconds(part: synth.Part, bpm: float) -> list[Note]:
    beat = 60.0 / bpm
    return [Note(n.start * beat, (n.start + n.length) * beat, n.pitch, n.velocity)
            for n in part.notes]


def f1(truth: list[Note], found: list[Note]) -> float:
    """mir_eval's note F1: onset within 50 ms, pitch within 50 cents, offsets ignored."""
    import mir_eval

    def arrays(notes: list[Note]) -> tuple[np.ndarray, np.ndarray]:
        return (np.array([[n.start, max(n.end, n.start + 0.01)] for n in notes]),
                np.array([440.0 * 2 ** ((n.pitch - 69) / 12) for n in notes]))

    if not found:
        return 0.0
    (ri, rp), (ei, ep) = arrays(truth), arrays(found)
    _, _, score, _ = mir_eval.transcription.precision_recall_f1_overlap(
        ri, rp, ei, ep, onset_tolerance=0.05, offset_ratio=None)
    return float(score)


@pytest.fixture(scope="module")
def bass() -> tuple[np.ndarray, list[Note]]:
    part = bass_line()
    length = round((len(part.notes) / 6 * 4 * 60 / BPM + 1.0) * 44_100)
    return synth.render_part(part, length, BPM), seconds(part, BPM)


@pytest.mark.parametrize("runtime", [RuntimeName.OPENVINO, RuntimeName.ONNXRUNTIME])
def test_a_rendered_bass_line_comes_back_note_for_note(
        bass: tuple[np.ndarray, list[Note]], runtime: RuntimeName) -> None:
    audio, truth = bass
    transcriber = Transcriber(RuntimeConfig(runtime=runtime, threads=1))
    steps: list[tuple[int, int]] = []
    found = transcriber.notes(audio, "bass", BPM, progress=lambda d, t: steps.append((d, t)))
    assert steps and steps[-1][0] == steps[-1][1]  # progress reached the end
    score = f1(truth, found)
    assert score >= BASS_F1_FLOOR, (score, transcriber.description)
    assert all(23 <= n.pitch <= 67 for n in found)  # a bass's keys only


def test_the_file_holds_the_notes_at_the_songs_tempo(tmp_path: Path) -> None:
    notes = [Note(0.5, 1.0, 40, 90), Note(1.0, 1.25, 47, 70), Note(2.0, 3.5, 28, 127)]
    path = write_midi(tmp_path / "bass.mid", notes, 97.5, program=33, name="bass")
    back, bpm = read_midi(path)
    assert bpm == pytest.approx(97.5, abs=1e-3)
    assert [(n.pitch, n.velocity) for n in back] == [(n.pitch, n.velocity) for n in notes]
    for got, want in zip(back, notes, strict=True):  # one tick is ~1.3 ms at 97.5 BPM
        assert got.start == pytest.approx(want.start, abs=0.002)
        assert got.end == pytest.approx(want.end, abs=0.002)
    programs = [m.program for m in mido.MidiFile(str(path)) if m.type == "program_change"]
    assert programs == [33]


def test_a_silent_stem_gives_an_empty_but_valid_file(tmp_path: Path) -> None:
    silent = encode(tmp_path / "silent.wav", np.zeros((2, 44_100 * 3), np.float32),
                    OutputFormat.WAV)
    target = tmp_path / "silent.mid"
    count = Transcriber(RuntimeConfig(threads=1)).transcribe_file(silent, target, "vocals", None)
    assert count == 0
    midi = mido.MidiFile(str(target))  # parses: a valid Standard MIDI File
    assert midi.type == 1 and len(midi.tracks) == 2
    notes, bpm = read_midi(target)
    assert notes == [] and bpm == pytest.approx(120.0)


def test_drums_are_refused_and_other_stems_have_a_decoding() -> None:
    with pytest.raises(UnpitchedStemError, match="drums are not pitched"):
        decoding_for("drums")
    assert decoding_for("bass").monophonic
    assert decoding_for("accompaniment") == decoding_for("other")
