"""What every benchmark script shares: where results go."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"


def save(name: str, results: dict[str, Any]) -> Path:
    """Write ``benchmarks/out/<name>.json`` and say where."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"wrote {path}")
    return path
