"""One contract for every runtime and precision the engine can run the networks on."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from separation import Separator, StemPreset, model_files, synth
from separation.apply import DEFAULT_OVERLAP
from separation.dsp import Float
from separation.htdemucs import SEGMENT
from separation.ort_graph import OrtGraph
from separation.ov_graph import native_bf16
from separation.piano import PianoModel
from separation.runtime import Precision, RuntimeConfig, RuntimeName, open_graph

F32_OV = RuntimeConfig(RuntimeName.OPENVINO, Precision.F32)
BF16_OV = RuntimeConfig(RuntimeName.OPENVINO, Precision.BF16)
F32_ORT = RuntimeConfig(RuntimeName.ONNXRUNTIME, Precision.F32)
CONFIGS = {"openvino-f32": F32_OV, "openvino-bf16": BF16_OV, "onnxruntime": F32_ORT}
needs_bf16 = pytest.mark.skipif(not native_bf16(), reason="this CPU has no native bfloat16")

# The engine test's floors (tests/separation/test_engine.py), for every runtime.
SDR_FLOOR = {"vocals": 11.0, "drums": 7.0, "bass": 5.0, "other": 0.0}
# bf16 against f32 on the two rendered clips, per stem: measured 24.1-44.8 dB (`other`, the
# quietest and least separated stem, lowest); SDR against the true stems moved by 0.03 dB at most.
BF16_MIN_SNR_DB = 20.0
BF16_MAX_SDR_CHANGE_DB = 0.1


def snr(reference: Float, estimate: Float) -> float:
    return synth.sdr(reference, estimate)


@pytest.fixture(scope="module")
def random_inputs() -> list[Float]:
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal((1, 2, SEGMENT))).astype(np.float32)
    spec = rng.standard_normal((1, 4, 2048, 336)).astype(np.float32)
    return [wave, spec]


@pytest.fixture(scope="module")
def reference_outputs(random_inputs: list[Float]) -> list[Float]:
    """The whole graph on ONNX Runtime in f32: what the exported model computes."""
    graph = OrtGraph(model_files.verified_path(model_files.HTDEMUCS))
    return graph.run(random_inputs)


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def separator_on(request: pytest.FixtureRequest) -> Separator:
    config = CONFIGS[request.param]
    if config.precision is Precision.BF16 and not native_bf16():
        pytest.skip("this CPU has no native bfloat16")
    return Separator(config=config)


@pytest.fixture(scope="module")
def clips() -> list[dict[str, Float]]:
    """Two rendered songs with known stems: the demo arrangement at two tempi."""
    return [synth.demo_clip(7.0), synth.demo_clip(7.0, bpm=96.0)]


def test_description_names_runtime_and_precision(separator_on: Separator) -> None:
    assert separator_on.description in {"openvino f32", "openvino bf16", "onnxruntime f32"}


def test_every_runtime_meets_the_sdr_floors(
    separator_on: Separator, demo_stems: dict[str, Float], demo_mix: Float
) -> None:
    stems = separator_on.separate(demo_mix, StemPreset.FOUR_STEMS)
    for stem, floor in SDR_FLOOR.items():
        score = synth.sdr(demo_stems[stem], stems[stem])
        assert score > floor, f"{separator_on.description} {stem}: {score:.1f} dB"


@pytest.mark.parametrize("config", [F32_OV, F32_ORT], ids=["openvino", "onnxruntime-parts"])
def test_f32_runtimes_compute_the_exported_graph(
    config: RuntimeConfig, random_inputs: list[Float], reference_outputs: list[Float]
) -> None:
    parts = model_files.htdemucs_parts()
    graph = open_graph(model_files.verified_path(model_files.HTDEMUCS), config, ort_parts=parts)
    for got, want in zip(graph.run(random_inputs), reference_outputs, strict=True):
        assert got.shape == want.shape and got.dtype == np.float32
        assert snr(want, got) > 60, f"{graph.description}: {snr(want, got):.1f} dB"


@needs_bf16
def test_bf16_agrees_with_f32_on_rendered_music(clips: list[dict[str, Float]]) -> None:
    f32, bf16 = Separator(config=F32_OV), Separator(config=BF16_OV)
    for clip in clips:
        mix = np.sum(list(clip.values()), axis=0)
        want = f32.separate(mix, StemPreset.FOUR_STEMS)
        got = bf16.separate(mix, StemPreset.FOUR_STEMS)
        for stem in want:
            agreement = snr(want[stem], got[stem])
            assert agreement > BF16_MIN_SNR_DB, f"{stem}: bf16 vs f32 {agreement:.1f} dB"
            change = synth.sdr(clip[stem], got[stem]) - synth.sdr(clip[stem], want[stem])
            assert abs(change) < BF16_MAX_SDR_CHANGE_DB, f"{stem}: SDR moved {change:+.2f} dB"


def test_piano_model_agrees_across_runtimes() -> None:
    path = model_files.model_dir() / model_files.PIANO_MODEL_NAME
    rng = np.random.default_rng(3)
    four = {name: (0.1 * rng.standard_normal((2, 5 * 44_100))).astype(np.float32)
            for name in ("vocals", "drums", "bass", "other")}
    want = PianoModel(path, F32_ORT).piano(four)
    got = PianoModel(path, F32_OV).piano(four)
    assert snr(want, got) > 60


def test_auto_precision_follows_the_cpu() -> None:
    graph = open_graph(model_files.model_dir() / model_files.PIANO_MODEL_NAME, RuntimeConfig())
    assert graph.description == ("openvino bf16" if native_bf16() else "openvino f32")


def test_openvino_failure_falls_back_to_onnxruntime_with_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = replace(F32_OV, device="NO_SUCH_DEVICE")
    with caplog.at_level(logging.WARNING, logger="stembot.engine"):
        graph = open_graph(model_files.model_dir() / model_files.PIANO_MODEL_NAME, config)
    assert graph.description == "onnxruntime f32"
    [record] = caplog.records
    message = record.getMessage()
    assert "OpenVINO failed" in message and "using ONNX Runtime" in message
    assert "\n" not in message


def test_compiled_models_are_cached_beside_the_model(tmp_path: Path) -> None:
    for name in (model_files.PIANO_MODEL_NAME,):
        (tmp_path / name).write_bytes((model_files.model_dir() / name).read_bytes())
    open_graph(tmp_path / model_files.PIANO_MODEL_NAME, F32_OV)
    blobs = list((tmp_path / "openvino-cache").iterdir())
    assert blobs, "no compiled blob was cached"
    open_graph(tmp_path / model_files.PIANO_MODEL_NAME, F32_OV)
    assert sorted(p.name for p in (tmp_path / "openvino-cache").iterdir()) == sorted(
        p.name for p in blobs
    ), "a second load compiled again instead of using the cache"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("STEMBOT_RUNTIME", "tensorflow", "STEMBOT_RUNTIME must be one of openvino, onnxruntime"),
        ("STEMBOT_PRECISION", "fp8", "STEMBOT_PRECISION must be one of auto, bf16, f32"),
        ("STEMBOT_OVERLAP", "a quarter", "STEMBOT_OVERLAP must be a number, not 'a quarter'"),
        ("STEMBOT_OVERLAP", "0.75", "STEMBOT_OVERLAP must be between 0 and 0.5, not 0.75"),
        ("STEMBOT_OVERLAP", "-0.1", "STEMBOT_OVERLAP must be between 0 and 0.5, not -0.1"),
    ],
)
def test_bad_runtime_settings_are_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        RuntimeConfig.from_env()


def test_runtime_settings_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEMBOT_RUNTIME", "ONNXRuntime")
    monkeypatch.setenv("STEMBOT_PRECISION", "f32")
    assert RuntimeConfig.from_env() == F32_ORT
    assert RuntimeConfig.from_env().overlap == DEFAULT_OVERLAP
    monkeypatch.setenv("STEMBOT_OVERLAP", "0.05")
    config = RuntimeConfig.from_env()
    assert config.overlap == 0.05
    assert config.with_overlap(None) == config
    assert config.with_overlap(0.5).overlap == 0.5
    with pytest.raises(ValueError, match="--overlap must be between 0 and 0.5, not 0.6"):
        config.with_overlap(0.6)
