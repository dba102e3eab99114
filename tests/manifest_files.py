"""Small manifests written for the integration tests (one place for their layout)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def write_gatys_manifest(
    root: Path, *, contents: str, styles: str, steps: int, chunk: int, **top: Any
) -> Path:
    """``root/m.yaml``: one image job, Gatys with ``steps`` Adam steps at 48 px, PNG outputs in
    ``root/out``. ``top`` adds top-level keys (e.g. ``device``)."""
    data = {
        "schema_version": 1,
        "output": "out",
        "chunk_size": chunk,
        **top,
        "jobs": [
            {
                "kind": "image",
                "name": "art",
                "method": "gatys",
                "contents": [contents],
                "styles": [styles],
                "size": 48,
                "format": "png",
                "params": {"optimizer": "adam", "steps": steps},
            }
        ],
    }
    path = root / "m.yaml"
    path.write_text(yaml.safe_dump(data))
    return path
