"""What the song benchmarks print and save: one JSON line per song as it is measured, then the
summary, and with --json both in one file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any


def song_line(result: Any) -> None:
    """One song's result (a dataclass) as a JSON line, at once: a long run shows its progress."""
    print(json.dumps(asdict(result)), flush=True)


def write_report(report: dict[str, Any], results: Sequence[Any], path: Path | None) -> None:
    """The summary printed; with `path`, the summary and every song's result saved there."""
    print(json.dumps(report, indent=2))
    if path:
        path.write_text(json.dumps({"summary": report, "songs": [asdict(r) for r in results]},
                                   indent=1))
