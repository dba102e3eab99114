"""The demo: bundled sample photos x the project's public-domain paintings, with the best method that
has trained weights installed (Gatys, which needs none, until then)."""

from __future__ import annotations

from pathlib import Path

from stylecore.methods import get_method
from stylecore.weights import load_catalog

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEMO_STYLES = PROJECT_ROOT / "manifests" / "styles"
DEMO_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png")
PREFERENCE = ("rast", "sanet", "adain")  # feed-forward first: seconds instead of minutes


def sample_photos() -> list[Path]:
    import skimage

    folder = Path(skimage.__file__).parent / "data"
    return [folder / name for name in DEMO_PHOTOS]


def demo_styles() -> list[Path]:
    return sorted(DEMO_STYLES.glob("*.jpg"))


def best_method() -> tuple[str, dict[str, object], int]:
    """(method, params, size): a trained feed-forward method at 512 px if one is installed, else Gatys."""
    catalog = load_catalog()
    for name in PREFERENCE:
        dw = get_method(name).default_weights
        if dw in catalog.names() and catalog.is_installed(dw):
            return name, {}, 512
    # Adam at 256 px: about 0.25 s per step on 2 CPU cores, so 9 images take about 3 minutes.
    return "gatys", {"optimizer": "adam", "steps": 80}, 256
