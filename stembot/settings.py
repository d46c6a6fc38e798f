"""Engine settings of `stembot separate`, from the environment (and `.env`, loaded by the CLI)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from separation import model_files
from separation.env import env_float, env_int


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """Where the models are and what input the engine accepts."""

    model_dir: Path
    data_dir: Path
    max_seconds: float
    max_bytes: int

    @classmethod
    def from_env(cls) -> EngineSettings:
        return cls(
            model_dir=Path(os.environ.get("STEMBOT_MODEL_DIR") or model_files.model_dir()),
            data_dir=Path(os.environ.get("STEMBOT_DATA_DIR") or "data"),
            max_seconds=env_float("STEMBOT_MAX_SECONDS", 15 * 60),
            max_bytes=env_int("STEMBOT_MAX_BYTES", 500 * 1024 * 1024),
        )
