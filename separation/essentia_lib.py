"""essentia, imported on first use with its console logging off (it logs INFO lines on import).

Lazily, because the library takes ~115 MiB: imported at start it would sit under the
separation's peak, when only the facts at the end need it.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import Any


@functools.cache
def _standard() -> ModuleType:
    essentia = importlib.import_module("essentia")
    essentia.log.infoActive = False
    essentia.log.warningActive = False
    return importlib.import_module("essentia.standard")  # after the log switches, on purpose


class _Standard:
    """`essentia.standard`, imported when an algorithm is first asked for."""

    def __getattr__(self, name: str) -> Any:
        return getattr(_standard(), name)


standard: Any = _Standard()

__all__ = ["standard"]
