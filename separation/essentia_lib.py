"""essentia, imported once with its console logging off (it logs INFO lines on import)."""

from __future__ import annotations

import essentia

essentia.log.infoActive = False
essentia.log.warningActive = False

import essentia.standard as standard  # noqa: E402  (after the log switches, on purpose)

__all__ = ["standard"]
