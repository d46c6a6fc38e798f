"""The fetched model, its checksum, and the part-by-part graph that runs it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from separation import model_files
from separation.errors import ModelNotInstalledError
from separation.graph_split import Manifest
from separation.htdemucs import SEGMENT
from separation.ort_graph import OrtGraph, OrtPartsGraph


def test_installed_model_matches_the_published_checksum() -> None:
    assert model_files.is_installed(model_files.HTDEMUCS)


def test_parts_give_the_same_outputs_as_the_whole_graph() -> None:
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal((1, 2, SEGMENT))).astype(np.float32)
    spec = rng.standard_normal((1, 4, 2048, 336)).astype(np.float32)
    expected = OrtGraph(model_files.verified_path(model_files.HTDEMUCS)).run([wave, spec])
    parts = OrtPartsGraph(model_files.htdemucs_parts()).run([wave, spec])
    for got, want in zip(parts, expected, strict=True):
        assert got.shape == want.shape
        assert np.abs(got - want).max() < 1e-4


def test_manifest_reads_every_part_input_from_an_earlier_part() -> None:
    manifest = Manifest.load(model_files.htdemucs_parts())
    available = set(manifest.graph_inputs)
    for part in manifest.parts:
        assert set(part.inputs) <= available
        available |= set(part.outputs)
    assert set(manifest.graph_outputs) <= available


def test_missing_model_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(ModelNotInstalledError, match="stembot models fetch"):
        model_files.htdemucs_parts(tmp_path)


def test_wrong_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / model_files.HTDEMUCS.name).write_bytes(b"not a model")
    assert not model_files.is_installed(model_files.HTDEMUCS, tmp_path)
    with pytest.raises(ModelNotInstalledError, match="wrong size"):
        model_files.verified_path(model_files.HTDEMUCS, tmp_path)
