"""Run a list of stylization items with one loaded stylizer: the whole job, without Prefect.

Style codes are encoded once per (style file, size) and reused for every content image; each output
is written atomically; a bad item (corrupt content, unreadable style) becomes a failed
:class:`ItemResult` and the rest go on. The CLI and the Prefect flows both drive this class.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from stylecore.errors import ImageError, ParameterError, StyleCoreError
from stylecore.imageio import (
    SUPPORTED_SUFFIXES,
    image_size,
    read_image,
    read_mask,
    resize_max_side,
    write_image,
)
from stylecore.methods.base import MIN_SIDE, MethodParams, StyleCode, Stylizer
from stylecore.methods.photoreal import paired_regions
from stylecore.metrics import Metrics, StyleStats, ssim

METRICS_MAX_SIDE = 1024  # metrics of larger outputs are computed on a downscaled copy


@dataclass(frozen=True)
class WorkItem:
    """One output image: a content, its style(s), how they combine, and where the result goes."""

    content: Path
    styles: tuple[Path, ...]
    output: Path
    style_weights: tuple[float, ...] | None = None
    mask: Path | None = None  # white = first style, black = second style
    segs: tuple[Path, Path] | None = None  # colour-coded (content, style) segmentations: region to region
    params: tuple[tuple[str, Any], ...] = ()  # per-item overrides of the job's parameters (augment: alpha)

    @property
    def name(self) -> str:
        return self.output.name


Writer = Callable[[torch.Tensor, "WorkItem"], None]


@dataclass
class ItemResult:
    item: WorkItem
    seconds: float = 0.0
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def path(self) -> Path:
        return self.item.output

    @property
    def name(self) -> str:
        return self.item.name


def collect_images(paths: Iterable[Path]) -> tuple[list[Path], list[str]]:
    """Expand folders into their image files (sorted); return (files, problems)."""
    files: list[Path] = []
    problems: list[str] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir() if p.suffix.lower() in SUPPORTED_SUFFIXES and p.is_file()
            )
            if not found:
                problems.append(
                    f"{path}: folder holds no image files ({', '.join(sorted(SUPPORTED_SUFFIXES))})"
                )
            files += found
        elif path.exists():
            files.append(path)
        else:
            problems.append(f"{path}: file not found")
    return files, problems


def check_readable(paths: Iterable[Path]) -> list[str]:
    """Header-check every image (cheap) so bad inputs are reported before any work starts."""
    problems = []
    for path in dict.fromkeys(paths):
        try:
            image_size(path)
        except ImageError as exc:
            problems.append(str(exc))
    return problems


class ImageRunner:
    """Stylizes :class:`WorkItem` s with one stylizer, caching style codes (and metric statistics) per style.

    ``metrics`` (optional) adds ``f_c(output, content)`` and ``f_s(output, style)`` to each result;
    ``write`` (optional) replaces the local atomic write, e.g. to send the image to an object store.
    """

    def __init__(
        self,
        stylizer: Stylizer,
        *,
        params: MethodParams | Mapping[str, Any] | None = None,
        size: int | None = 512,
        style_size: int | None = None,
        quality: int = 95,
        seed: int = 0,
        metrics: Metrics | None = None,
        cache_styles: bool = True,
        io_overlap: bool | None = None,
    ) -> None:
        self.stylizer = stylizer
        self.cache_styles = cache_styles  # off only to measure what caching saves
        self.io_overlap = io_overlap  # None: overlap image I/O with compute on CUDA only
        self.params = stylizer.make_params(params)
        self.size = size
        self.style_size = style_size or size
        self.quality = quality
        self.seed = seed
        self.metrics = metrics
        self._styles: dict[Path, torch.Tensor] = {}
        self._codes: dict[Path, StyleCode] = {}
        self._stats: dict[Path, StyleStats] = {}
        self._item_params: dict[tuple, MethodParams] = {}
        self._content_key: tuple | None = None
        self._content_feats: dict[str, torch.Tensor] = {}

    def style_image(self, path: Path) -> torch.Tensor:
        key = path.resolve()
        if key not in self._styles:
            self._styles[key] = read_sized(path, self.style_size)
        return self._styles[key]

    def style_code(self, path: Path) -> StyleCode:
        key = path.resolve()
        if not self.cache_styles:
            return self.stylizer.encode_style(read_sized(path, self.style_size))
        if key not in self._codes:
            self._codes[key] = self.stylizer.encode_style(self.style_image(path))
        return self._codes[key]

    def style_stats(self, path: Path) -> StyleStats:
        key = path.resolve()
        if key not in self._stats:
            assert self.metrics is not None
            self._stats[key] = self.metrics.style_stats(self.style_image(path)[None])
        return self._stats[key]

    def region_codes(self, item: WorkItem, size: tuple[int, int]) -> tuple[list[StyleCode], torch.Tensor]:
        """Semantic transfer: one style code per region shared by the two segmentations, and the
        content's region masks (1, K, H, W) at ``size``."""
        if not self.stylizer.supports_style_regions:
            raise ParameterError(f"{self.stylizer.name} does not support semantic masks")
        if len(item.styles) != 1:
            raise ParameterError("semantic masks pair one content with one style")
        content_seg = read_image(item.segs[0])
        style_seg = read_image(item.segs[1])
        style = self.style_image(item.styles[0])
        style_seg = F.interpolate(style_seg[None], size=style.shape[-2:], mode="nearest")[0]
        _, c_masks, s_masks = paired_regions(content_seg, style_seg)
        codes = [self.stylizer.encode_style(style, region=s_masks[k]) for k in range(len(s_masks))]
        masks = F.interpolate(c_masks[None], size=size, mode="nearest")
        return codes, masks

    def run(
        self, items: Sequence[WorkItem], write: Writer | None = None, *, batch_size: int = 1
    ) -> Iterator[ItemResult]:
        """Results in item order, with image I/O overlapped with compute.

        A background thread decodes the next contents and encodes/writes finished outputs while the
        model works (on CUDA only: on a CPU the I/O thread would take cores from the model; measured
        20 % slower on 2 cores). Consecutive items with the same content size and style set are
        stylized as one batch of up to ``batch_size`` (a GPU wants 8-32; on a CPU 1 is as fast). A
        result is yielded only once its image is written, so "ok" always means the file exists.
        """
        if batch_size < 1:
            raise ParameterError(f"batch_size must be >= 1, got {batch_size}")
        todo = iter(items)
        overlap = self.stylizer.device.type == "cuda" if self.io_overlap is None else self.io_overlap
        pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="stylepipe-io") if overlap else _Inline()
        with pool as io:
            reads: deque = deque()

            def read_ahead() -> None:
                item = next(todo, None)
                if item is not None:
                    reads.append((item, io.submit(self._read_content, item)))

            for _ in range(batch_size + 1):
                read_ahead()
            writing: deque = deque()
            while reads:
                batch = [(reads[0][0], reads.popleft()[1].result())]
                read_ahead()
                while len(batch) < batch_size and reads and self._batchable(batch[0], reads[0]):
                    batch.append((reads[0][0], reads.popleft()[1].result()))
                    read_ahead()
                writing.extend(self._run_batch(batch, write, io))
                while writing and writing[0][1].done():
                    yield self._finish(*writing.popleft())
            while writing:
                yield self._finish(*writing.popleft())

    def _read_content(self, item: WorkItem) -> torch.Tensor | StyleCoreError:
        try:
            return read_sized(item.content, self.size).unsqueeze(0)
        except StyleCoreError as exc:
            return exc

    def _batchable(self, first: tuple, candidate: tuple) -> bool:
        """Same size, and either the same styles and parameters (one ``stylize`` call) or single
        styles that differ only in style and alpha (one ``stylize_each`` call: augmentation)."""
        (a, ta), (b, fut) = first, candidate
        if a.mask or a.segs or b.mask or b.segs:
            return False
        same = (a.styles, a.style_weights, a.params) == (b.styles, b.style_weights, b.params)
        if not same and not (self._per_sample(a) and self._per_sample(b)):
            return False
        if not same and _without_alpha(a.params) != _without_alpha(b.params):
            return False
        tb = fut.result()
        return isinstance(ta, torch.Tensor) and isinstance(tb, torch.Tensor) and ta.shape == tb.shape

    def _per_sample(self, item: WorkItem) -> bool:
        return len(item.styles) == 1 and item.style_weights is None and self.stylizer.batches_per_sample

    def item_params(self, item: WorkItem) -> MethodParams:
        """The job's parameters with the item's overrides."""
        if not item.params:
            return self.params
        key = item.params
        if key not in self._item_params:
            self._item_params[key] = self.stylizer.make_params({**self.params.model_dump(), **dict(key)})
        return self._item_params[key]

    def _run_batch(
        self, batch: list[tuple], write: Writer | None, io: ThreadPoolExecutor | _Inline
    ) -> list[tuple]:
        """Stylize a batch; return (result, write future) per item, failed items with a done future."""
        out: list[tuple] = []
        ok = [(item, t) for item, t in batch if isinstance(t, torch.Tensor)]
        images: torch.Tensor | StyleCoreError | None = None
        start = time.perf_counter()
        if ok:
            try:
                images = self.stylize_batch(torch.cat([t for _, t in ok]), [item for item, _ in ok])
            except StyleCoreError as exc:
                images = exc
        per_item = (time.perf_counter() - start) / max(1, len(ok))
        k = 0
        for item, t in batch:
            result = ItemResult(item, seconds=per_item)
            if not isinstance(t, torch.Tensor):
                result.error = str(t)
            elif isinstance(images, StyleCoreError):
                result.error = str(images)
            else:
                assert images is not None
                image = images[k]
                k += 1
                try:
                    if self.metrics is not None:
                        result.extra.update(self.measure(image[None], t, item))
                except StyleCoreError as exc:
                    result.error = str(exc)
                else:
                    out.append((result, io.submit(self._write, image, item, write)))
                    continue
            out.append((result, _done()))
        return out

    def _write(self, image: torch.Tensor, item: WorkItem, write: Writer | None) -> float:
        start = time.perf_counter()
        if write is None:
            write_image(image, item.output, quality=self.quality)
        else:
            write(image, item)
        return time.perf_counter() - start

    @staticmethod
    def _finish(result: ItemResult, written: Future) -> ItemResult:
        try:
            seconds = written.result()
            if seconds is not None:
                result.seconds += seconds
        except StyleCoreError as exc:
            result.error = str(exc)
        return result

    def measure(self, output: torch.Tensor, content: torch.Tensor, item: WorkItem) -> dict[str, float]:
        """f_c, f_s (single style) and SSIM, at most METRICS_MAX_SIDE px so huge photos stay affordable."""
        assert self.metrics is not None
        output = resize_max_side(output, METRICS_MAX_SIDE)
        content = resize_max_side(content, METRICS_MAX_SIDE)
        out = {"ssim": float(ssim(output, content)[0])}
        # A bf16 job measures in bf16 too (convolutions only; the statistics stay fp32): about 1.5x
        # faster; f_c/f_s move by well under 1 % (benchmarks/adain_throughput.py prints how much).
        bf16 = self.item_params(item).precision == "bf16"
        with torch.autocast(output.device.type, dtype=torch.bfloat16, enabled=bf16):
            if len(item.styles) == 1:
                f_c, f_s = self.metrics.scores(
                    output, self.content_features(item, content, bf16), self.style_stats(item.styles[0])
                )
                out.update(f_c=float(f_c[0]), f_s=float(f_s[0]))
            else:  # a mix has no single style to compare with
                out["f_c"] = float(self.metrics.f_c(output, content)[0])
        return out

    def content_features(self, item: WorkItem, content: torch.Tensor, bf16: bool) -> dict[str, torch.Tensor]:
        """The content's f_c features, kept for the next item: a content paired with several styles
        (items are ordered content by content) is encoded once."""
        assert self.metrics is not None
        key = (item.content.resolve(), tuple(content.shape), bf16)
        if self._content_key != key:
            self._content_feats = self.metrics.content_features(content)
            self._content_key = key
        return self._content_feats

    def stylize_batch(self, content: torch.Tensor, items: Sequence[WorkItem]) -> torch.Tensor:
        """Contents (B, 3, H, W) of ``items`` (as grouped by ``_batchable``) -> (B, 3, H, W)."""
        item = items[0]
        params = self.item_params(item)
        if any((i.styles, i.params) != (item.styles, item.params) for i in items[1:]):
            return self.stylizer.stylize_each(
                content,
                [self.style_code(i.styles[0]) for i in items],
                alphas=[self.item_params(i).alpha for i in items],
                params=params,
                generator=torch.Generator().manual_seed(self.seed),
            )
        masks = None
        if item.segs is not None:
            codes, masks = self.region_codes(item, tuple(content.shape[-2:]))
        else:
            codes = [self.style_code(p) for p in item.styles]
        if item.mask is not None:
            if len(codes) != 2:
                raise ParameterError(f"{item.mask}: a mask places exactly two styles, got {len(codes)}")
            m = read_mask(item.mask, size=tuple(content.shape[-2:]))
            masks = torch.cat([m, 1.0 - m]).unsqueeze(0)
        generator = torch.Generator().manual_seed(self.seed)
        out = self.stylizer.stylize(
            content,
            codes,
            params=params,
            style_weights=item.style_weights,
            masks=masks,
            generator=generator,
        )
        return out


def read_sized(path: Path, max_side: int | None) -> torch.Tensor:
    """:func:`read_image`, refusing an image too small for the networks with its file named (the
    method itself sees only a tensor, and a report would name the output)."""
    image = read_image(path, max_side=max_side)
    h, w = image.shape[-2:]
    if min(h, w) < MIN_SIDE:
        scaled = f" at a longest side of {max_side}" if max_side is not None and max(h, w) == max_side else ""
        raise ImageError(path, f"too small: {w}x{h} pixels{scaled}; each side must be at least {MIN_SIDE}")
    return image


def plan_image_items(
    contents: Sequence[Path],
    styles: Sequence[Path],
    out: Path,
    *,
    method: str,
    fmt: str = "jpg",
    mix: Sequence[float] | None = None,
    mask: Path | None = None,
) -> tuple[list[WorkItem], list[str]]:
    """Every content x every style, or every content x one mixed/masked style set.

    Output names are ``<content>__<style>__<method>.<fmt>``; two items that would share a name are
    reported rather than silently overwriting each other. ``mix`` and ``mask`` that do not fit the
    styles raise :class:`ParameterError`.
    """
    if mix is not None and mask is not None:
        raise ParameterError(
            "{mix} and {mask} cannot be combined: mix blends styles, mask places them",
            settings=("mix", "mask"),
        )
    if mix is not None and len(mix) != len(styles):
        raise ParameterError(
            f"{{mix}} has {len(mix)} weight(s) for {len(styles)} style(s); give one per style",
            settings=("mix",),
        )
    if mask is not None and len(styles) != 2:
        raise ParameterError(f"{{mask}} places exactly two styles, got {len(styles)}", settings=("mask",))
    problems: list[str] = []
    items: list[WorkItem] = []
    for c in contents:
        if mix is not None or mask is not None:
            tag = ("mix-" if mix is not None else "mask-") + "+".join(s.stem for s in styles)
            weights = tuple(float(w) for w in mix) if mix is not None else None
            items.append(WorkItem(c, tuple(styles), out / f"{c.stem}__{tag}__{method}.{fmt}", weights, mask))
        else:
            items += [WorkItem(c, (s,), out / f"{c.stem}__{s.stem}__{method}.{fmt}") for s in styles]
    seen: dict[Path, WorkItem] = {}
    for item in items:
        if item.output in seen:
            other = seen[item.output]
            problems.append(
                f"{item.content} and {other.content}: both would write {item.output.name}; rename one"
            )
        seen[item.output] = item
    return items, problems


def _without_alpha(params: tuple[tuple[str, Any], ...]) -> tuple[tuple[str, Any], ...]:
    return tuple(kv for kv in params if kv[0] != "alpha")


class _Inline:
    """An executor that runs each call at once: I/O in line with compute (the CPU path)."""

    def submit(self, fn, *args) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as exc:  # delivered through the future, like a real executor
            fut.set_exception(exc)
        return fut

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _done() -> Future:
    fut: Future = Future()
    fut.set_result(None)
    return fut
