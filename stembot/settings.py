"""Engine settings from the environment (and `.env`, loaded by the CLI)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from separation import model_files


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"error: {name} must be a whole number, not {raw!r}") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"error: {name} must be a number, not {raw!r}") from None


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SystemExit(f"error: {name} must be true or false, not {raw!r}")


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
