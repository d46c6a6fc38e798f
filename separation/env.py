"""Typed settings from the environment; every part reads its settings through these.

Each helper raises `SettingError` (a ValueError) naming the variable and the bad value; the
CLI turns it into one line and exit status 1, so no part needs to know about the CLI.
"""

from __future__ import annotations

import enum
import os
from typing import TypeVar

E = TypeVar("E", bound=enum.StrEnum)


class SettingError(ValueError):
    """A setting holds a value it cannot take; the message is one line for the user."""


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingError(f"{name} must be a whole number, not {raw!r}") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingError(f"{name} must be a number, not {raw!r}") from None


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingError(f"{name} must be true or false, not {raw!r}")


def env_choice(kind: type[E], name: str, default: E) -> E:
    """One of an enum's values, case-insensitive."""
    raw = (os.environ.get(name) or "").strip().lower()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        allowed = ", ".join(e.value for e in kind)
        raise SettingError(f"{name} must be one of {allowed}, not {raw!r}") from None
