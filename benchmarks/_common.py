"""Helpers shared by the benchmarks: picking input images and a method's weights."""

from __future__ import annotations

from pathlib import Path

from stylecore.methods import get_method
from stylecore.weights import load_catalog

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "datasets"
MANIFESTS = ROOT / "manifests"


def content_images(n: int) -> list[Path]:
    """n photos from the shared corpus (the demo photos, repeated, when it is absent)."""
    if (SHARED / "content").is_dir():
        files = sorted((SHARED / "content").glob("*.jpg"))
    else:
        files = sorted((MANIFESTS / "photos").glob("*.jpg"))
    return [files[i % len(files)] for i in range(n)]


def installed_weights(method: str) -> str:
    """The method's default weights if installed, else any installed weights for it."""
    catalog = load_catalog()
    default = get_method(method).default_weights
    names = [default] if default in catalog.names() else []
    names += catalog.names(method=method)
    for name in names:
        if catalog.is_installed(name):
            return name
    raise SystemExit(
        f"no installed weights for {method}: train and export some first (stylize train {method})"
    )
