"""Training data: random square crops from folders of images, in a resumable, seeded order.

Images are decoded once (through :mod:`stylecore.imageio`), scaled so the short side is
``load_size`` and kept in memory as uint8, so an iteration costs no JPEG decoding. The stream's
state (epoch, position, generator state) goes into checkpoints, so a resumed run sees exactly the
batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from stylecore.errors import ImageError, ParameterError
from stylecore.imageio import SUPPORTED_SUFFIXES, read_image


def eval_split(path: str | Path | None = None) -> list[str]:
    """The evaluation split: image paths relative to a datasets folder (``content/c00013.jpg``,
    ``style/s00042.jpg``) that training leaves out and the quality benchmark measures on.

    ``path`` reads another list in the same format (one path a line, ``#`` comments); by default the
    split shipped with stylecore (``stylecore/data/eval_split.txt``).
    """
    try:
        if path is None:
            text = resources.files("stylecore").joinpath("data", "eval_split.txt").read_text()
        else:
            text = Path(path).read_text()
    except OSError as exc:
        raise ParameterError(
            f"{path}: cannot read the list of held-out images ({exc.strerror or exc})"
        ) from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def list_images(folders: Sequence[Path], exclude: set[str] | None = None) -> list[Path]:
    """Sorted image files of the folders, minus any whose file name is in ``exclude``."""
    exclude = exclude or set()
    files = sorted(
        p
        for folder in folders
        for p in Path(folder).iterdir()
        if p.suffix.lower() in SUPPORTED_SUFFIXES and p.name not in exclude
    )
    if not files:
        raise ParameterError(f"no training images in {', '.join(map(str, folders))}")
    return files


class ImagePool:
    """Images held in memory as uint8 (3, H, W) with short side ``load_size``; unreadable files skipped."""

    def __init__(self, files: Sequence[Path], load_size: int) -> None:
        self.images: list[torch.Tensor] = []
        self.skipped: list[str] = []
        for path in files:
            try:
                img = read_image(path)
            except ImageError as exc:
                self.skipped.append(str(exc))
                continue
            h, w = img.shape[-2:]
            scale = load_size / min(h, w)
            size = (max(load_size, round(h * scale)), max(load_size, round(w * scale)))
            img = F.interpolate(img[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
            self.images.append((img.clamp(0, 1) * 255).round().to(torch.uint8))
        if not self.images:
            raise ParameterError("none of the training images could be read")

    def __len__(self) -> int:
        return len(self.images)


class CropStream:
    """Endless batches of random crops from a pool: a permutation per epoch, seeded, resumable."""

    def __init__(self, pool: ImagePool, batch: int, crop: int, seed: int) -> None:
        self.pool, self.batch, self.crop = pool, batch, crop
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch, self.pos = 0, 0
        self.order = torch.randperm(len(pool), generator=self.generator)

    def next(self) -> torch.Tensor:
        out = []
        for _ in range(self.batch):
            if self.pos >= len(self.order):
                self.epoch, self.pos = self.epoch + 1, 0
                self.order = torch.randperm(len(self.pool), generator=self.generator)
            img = self.pool.images[int(self.order[self.pos])]
            self.pos += 1
            h, w = img.shape[-2:]
            top = int(torch.randint(0, h - self.crop + 1, (1,), generator=self.generator))
            left = int(torch.randint(0, w - self.crop + 1, (1,), generator=self.generator))
            crop = img[:, top : top + self.crop, left : left + self.crop]
            if torch.rand(1, generator=self.generator) < 0.5:
                crop = crop.flip(-1)
            out.append(crop)
        return torch.stack(out).float() / 255.0

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "pos": self.pos, "order": self.order, "rng": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.pos, self.order = state["epoch"], state["pos"], state["order"]
        self.generator.set_state(state["rng"])
