"""Style augmentation of training data (Stylized-ImageNet style): offline choices and an on-the-fly transform.

Two ways to use it, sharing the same deterministic choices:

* offline, through an ``augment`` manifest job: every chosen image gets ``per_image`` stylized copies,
  each with a style and an alpha drawn from :func:`draw` - a hash of (seed, image path, copy), so the
  choice for one image never depends on which other images exist or in which order they run;
* on the fly, :class:`StyleAugment`, a transform for a torchvision pipeline (PIL image or tensor) or
  for a whole batch on the GPU inside a training loop: style codes are encoded once, and a batch is
  stylized in one pass with a different style and alpha per sample.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from PIL import Image

from stylecore.errors import ParameterError
from stylecore.imageio import SUPPORTED_SUFFIXES, from_pil, read_image, to_pil
from stylecore.methods import StyleCode, Stylizer, get_method
from stylecore.runner import collect_images


def unit_hash(*parts: Any) -> float:
    """A number in [0, 1) determined only by ``parts`` (stable across runs, machines and Python versions)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def draw(seed: int, key: str, copy: int, n_styles: int, alpha: tuple[float, float]) -> tuple[int, float]:
    """The style index and alpha of copy ``copy`` of the image ``key``."""
    style = min(int(unit_hash(seed, key, copy, "style") * n_styles), n_styles - 1)
    lo, hi = alpha
    return style, lo + (hi - lo) * unit_hash(seed, key, copy, "alpha")


def select(keys_by_class: dict[str, list[str]], fraction: float, seed: int) -> set[str]:
    """``round(fraction * n)`` images of each class (at least one where fraction > 0), chosen by hash.

    Per class, so a stylized copy keeps the class balance of the source; by hash rank, so growing the
    dataset keeps earlier choices mostly unchanged.
    """
    if not 0.0 < fraction <= 1.0:
        raise ParameterError(f"fraction must be in (0, 1], got {fraction}")
    chosen: set[str] = set()
    for keys in keys_by_class.values():
        n = max(1, round(fraction * len(keys))) if keys else 0
        chosen.update(sorted(keys, key=lambda k: unit_hash(seed, k, "select"))[:n])
    return chosen


def check_alpha(alpha: float | Sequence[float]) -> tuple[float, float]:
    try:
        lo, hi = (float(alpha), float(alpha)) if isinstance(alpha, int | float) else map(float, alpha)
    except (TypeError, ValueError):
        lo, hi = -1.0, -1.0  # reported below
    if not 0.0 <= lo <= hi <= 1.0:
        raise ParameterError(f"alpha must be in [0, 1], or a range [lo, hi] with lo <= hi; got {alpha}")
    return lo, hi


class StyleAugment(torch.nn.Module):
    """Stylize each image with probability ``p``, with a random style of the pool and a random alpha.

    Accepts a PIL image (returns one: put it before ``ToTensor``), a (3, H, W) tensor or a (B, 3, H, W)
    batch, float in [0, 1] or uint8, on any device (the result comes back on the input's device and
    dtype). Batches are stylized in one pass. For a DataLoader with workers, each worker process holds
    its own copy of the model; on a GPU, apply it to the batch in the training loop instead.

    ``styles``: image files and/or folders, or tensors (3, H, W) in [0, 1]. ``seed`` makes the draws
    reproducible (one generator per transform); without it the global torch RNG is used.
    """

    def __init__(
        self,
        method: str = "adain",
        styles: Sequence[str | Path | torch.Tensor] = (),
        *,
        p: float = 0.5,
        alpha: float | tuple[float, float] = (0.5, 1.0),
        weights: str | None = None,
        params: dict[str, Any] | None = None,
        style_size: int = 256,
        device: str | torch.device = "auto",
        seed: int | None = None,
        stylizer: Stylizer | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ParameterError(f"p must be in [0, 1], got {p}")
        self.p = p
        self.alpha = check_alpha(alpha)
        self.stylizer = stylizer or get_method(method).load(weights, device=device)
        self.params = self.stylizer.make_params(params)
        self.style_size = style_size
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self.codes: list[StyleCode] = [self.stylizer.encode_style(s) for s in self._style_images(styles)]

    def _style_images(self, styles: Sequence[str | Path | torch.Tensor]) -> list[torch.Tensor]:
        tensors = [s for s in styles if isinstance(s, torch.Tensor)]
        files, problems = collect_images([Path(s) for s in styles if not isinstance(s, torch.Tensor)])
        if problems:
            raise ParameterError("style pool: " + "; ".join(problems))
        images = [read_image(f, max_side=self.style_size) for f in files] + tensors
        if not images:
            raise ParameterError("StyleAugment needs at least one style image")
        return images

    def forward(self, image: Image.Image | torch.Tensor) -> Image.Image | torch.Tensor:
        if isinstance(image, Image.Image):
            return to_pil(self.forward(from_pil(image)))
        if not isinstance(image, torch.Tensor):
            raise ParameterError(f"StyleAugment takes a PIL image or a tensor, got {type(image).__name__}")
        single = image.dim() == 3
        batch = image.unsqueeze(0) if single else image
        n = batch.shape[0]
        chosen = (torch.rand(n, generator=self.generator) < self.p).nonzero().flatten().tolist()
        styles = torch.randint(len(self.codes), (n,), generator=self.generator).tolist()
        lo, hi = self.alpha
        alphas = (lo + (hi - lo) * torch.rand(n, generator=self.generator)).tolist()
        if chosen:
            batch = self.apply(batch, chosen, [styles[i] for i in chosen], [alphas[i] for i in chosen])
        return batch[0] if single else batch

    @torch.no_grad()
    def apply(
        self, batch: torch.Tensor, indices: list[int], styles: list[int], alphas: list[float]
    ) -> torch.Tensor:
        """Stylize ``batch[indices]`` with the given pool styles and alphas; the others are untouched."""
        integer = not batch.is_floating_point()
        x = batch.float() / 255.0 if integer else batch.float()
        out = self.stylizer.stylize_each(
            x[indices], [self.codes[s] for s in styles], alphas=alphas, params=self.params
        ).to(batch.device)
        result = x.clone()
        result[indices] = out
        if integer:
            return (result * 255.0).round().clamp(0, 255).to(batch.dtype)
        return result.to(batch.dtype)


# ---- labelled datasets ---------------------------------------------------------------------------------


class LabelledImage(NamedTuple):
    rel: str  # where the image sits in its dataset (posix, relative); its copies go to the same place
    label: str
    path: Path


def scan_dataset(source: Path) -> tuple[list[LabelledImage], list[str]]:
    """The images of an ImageFolder root or of a CSV/Parquet ``path,label`` list; returns (images, problems).

    ImageFolder: each sub-folder is a class, its images are found recursively (as torchvision's
    ``ImageFolder`` does); files at the top level belong to no class and are left out.
    """
    if source.is_dir():
        classes = sorted(d for d in source.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not classes:
            return [], [f"{source}: no class folders (ImageFolder layout: <root>/<class>/<image>)"]
        images, problems = [], []
        for d in classes:
            found = sorted(
                p
                for p in d.rglob("*")
                if p.suffix.lower() in SUPPORTED_SUFFIXES
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(source).parts)
            )
            if not found:
                problems.append(f"{d}: class folder holds no images")
            images += [LabelledImage(p.relative_to(source).as_posix(), d.name, p) for p in found]
        return images, problems
    if source.suffix.lower() in (".csv", ".parquet"):
        return _read_list(source)
    if not source.exists():
        return [], [f"{source}: not found"]
    return [], [f"{source}: expected an ImageFolder directory or a .csv/.parquet list of path,label"]


def _read_list(source: Path) -> tuple[list[LabelledImage], list[str]]:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(source) if source.suffix.lower() == ".parquet" else pacsv.read_csv(source)
    except Exception as exc:  # pyarrow raises several types for unreadable files
        return [], [f"{source}: cannot read the list ({exc})"]
    missing = {"path", "label"} - set(table.column_names)
    if missing:
        return [], [f"{source}: missing column(s) {', '.join(sorted(missing))} (needs path,label)"]
    images, problems = [], []
    base = source.parent
    for row, (rel, label) in enumerate(
        zip(table.column("path").to_pylist(), table.column("label").to_pylist(), strict=True), start=2
    ):
        if not rel or label is None or str(label) == "":
            problems.append(f"{source}:{row}: empty path or label")
            continue
        path = Path(rel) if Path(rel).is_absolute() else base / rel
        # The copy goes where the source sits relative to the list; elsewhere: <label>/<file name>.
        try:
            out_rel = path.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            out_rel = f"{label}/{path.name}"
        if not path.is_file():
            problems.append(f"{source}:{row}: file not found: {path}")
            continue
        images.append(LabelledImage(out_rel, str(label), path))
    if not images and not problems:
        problems.append(f"{source}: the list is empty")
    return images, problems
