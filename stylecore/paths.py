"""Where stylepipe's files live: installed package data and the per-user folder.

Kept free of heavy imports (no torch) so that the CLI and the server helpers can use it cheaply.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path


def package_dir(package: str) -> Path | None:
    """The folder of an importable package, or None when it is not installed.

    A real folder, not an ``importlib.resources`` traversable: safetensors memory-maps the files.
    """
    try:
        found = importlib.util.find_spec(package)
    except ModuleNotFoundError:  # a parent package is missing
        return None
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations)))


def home_dir() -> Path:
    """Per-user state: imported weights, the local server's database (``STYLEPIPE_HOME``, default
    ``~/.local/share/stylepipe``)."""
    default = Path.home() / ".local" / "share" / "stylepipe"
    return Path(os.environ.get("STYLEPIPE_HOME", default))
