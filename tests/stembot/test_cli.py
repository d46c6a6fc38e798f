"""`stembot separate` as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from separation import decode
from separation.dsp import Float
from separation.loudness import integrated_loudness


def stembot(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "stembot", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def test_separate_writes_one_file_per_stem(demo_wav: Path, demo_mix: Float, tmp_path: Path) -> None:
    out = tmp_path / "stems"
    result = stembot(
        "separate", str(demo_wav), "--stems", "2", "--out", str(out), "--format", "flac"
    )
    assert result.returncode == 0, result.stderr
    assert f"2 stems written to {out}/" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["accompaniment.flac", "vocals.flac"]
    for path in out.iterdir():
        assert decode(path).shape == demo_mix.shape
    # the song's facts: the demo is 120 BPM; its loudness is the input's (16-bit WAV)
    mix = integrated_loudness(decode(demo_wav), 44_100)
    assert mix is not None
    facts = result.stdout.strip().splitlines()[-1]
    assert facts.startswith("120 BPM · ") and facts.endswith(f" · {mix:.1f} LUFS".replace("-", "−"))


def test_json_gives_the_stems_and_the_facts_to_scripts(demo_wav: Path, tmp_path: Path) -> None:
    out = tmp_path / "stems"
    result = stembot("separate", str(demo_wav), "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    stems = ("vocals", "drums", "bass", "other")
    assert report["stems"] == {s: str(out / f"{s}.wav") for s in stems}
    facts = report["facts"]
    assert facts["tempo"]["bpm"] == pytest.approx(120, rel=0.02)
    assert 0.5 < facts["tempo"]["confidence"] <= 1
    assert facts["key"]["mode"] in ("major", "minor") and 0 <= facts["key"]["tonic"] < 12
    mix = integrated_loudness(decode(demo_wav), 44_100)
    assert facts["loudness"]["mix"] == pytest.approx(mix, abs=0.01)
    assert set(facts["loudness"]["stems"]) == set(report["stems"])
    for stem, path in report["stems"].items():  # each stem's loudness is that of its file
        expected = integrated_loudness(decode(Path(path)), 44_100)
        assert facts["loudness"]["stems"][stem] == pytest.approx(expected, abs=0.05)


def test_midi_writes_the_pitched_stems_notes_beside_them(demo_wav: Path, tmp_path: Path
                                                         ) -> None:
    from separation.midi_file import read_midi

    out = tmp_path / "stems"
    result = stembot("separate", str(demo_wav), "--out", str(out), "--midi", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    # 4 stems: no piano, and drums are not pitched
    assert report["midi"] == {s: str(out / f"{s}.mid") for s in ("vocals", "bass")}
    notes, bpm = read_midi(out / "bass.mid")
    assert bpm == pytest.approx(report["facts"]["tempo"]["bpm"], abs=0.01)
    assert notes and notes[0].pitch == 45  # the demo's bass opens on A2


def test_bad_input_is_one_line_and_a_failure(tmp_path: Path) -> None:
    bad = tmp_path / "track.wav"
    bad.write_text("not audio")
    result = stembot("separate", str(bad), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert result.stderr.strip() == "error: track.wav: not an audio file (FFmpeg cannot read it)"
    assert "Traceback" not in result.stderr


def test_too_long_input_names_the_limit(demo_wav: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "stembot", "separate", str(demo_wav), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**__import__("os").environ, "STEMBOT_MAX_SECONDS": "5"},
    )
    assert result.returncode == 1
    assert "longer than the 0:05 limit" in result.stderr


def test_help_lists_every_command() -> None:
    result = stembot("--help")
    assert result.returncode == 0
    for command in ("separate", "models", "up"):
        assert command in result.stdout
    assert "--stems" in stembot("separate", "--help").stdout


def test_a_bad_setting_is_one_line_naming_it(demo_wav: Path, tmp_path: Path) -> None:
    import os

    cases = [
        (["separate", str(demo_wav), "--out", str(tmp_path)], "STEMBOT_PRECISION", "fp8",
         "error: STEMBOT_PRECISION must be one of auto, bf16, f32, not 'fp8'"),
        (["separate", str(demo_wav), "--out", str(tmp_path)], "STEMBOT_OVERLAP", "0.9",
         "error: STEMBOT_OVERLAP must be between 0 and 0.5, not 0.9"),
        (["separate", str(demo_wav), "--out", str(tmp_path), "--overlap", "0.7"],
         "STEMBOT_OVERLAP", "0.1", "error: --overlap must be between 0 and 0.5, not 0.7"),
        (["serve"], "STEMBOT_WORKERS", "two",
         "error: STEMBOT_WORKERS must be a whole number, not 'two'"),
        (["serve"], "STEMBOT_RESULT_CACHE", "sometimes",
         "error: STEMBOT_RESULT_CACHE must be one of owner, global, off, not 'sometimes'"),
    ]
    for args, name, value, message in cases:
        result = subprocess.run([sys.executable, "-m", "stembot", *args], capture_output=True,
                                text=True, timeout=120, check=False,
                                env=os.environ | {name: value, "STEMBOT_DATA_DIR": str(tmp_path)})
        assert (result.returncode, result.stderr.strip()) == (1, message), result.stderr
