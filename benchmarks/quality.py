"""Quality report: every method on the held-out evaluation split, the seed's metrics, and a grid image.

    .venv/bin/python -m benchmarks.quality [--methods gatys adain sanet rast] [--size 512]
        [--contents 8] [--styles 8] [--offset 0] [--gatys-steps 200] [--out output/quality]

The split is ``stylecore/data/eval_split.txt`` (8 contents x 8 styles of ../shared/datasets that
``stylize train`` never sees). For each method, over the same pairs at ``--size`` px (longest side):
mean f_c(output, content) and f_s(output, style) with the vgg16-hed encoder, and the medians of
the grid-artefact score and amplitude (``stylecore.metrics.checkerboard`` and ``grid_amplitude``);
plus the reference rows f_s(content, style) (how far the untouched photo is from the style) and
f_c(style, content). Results per method go to
``<out>/<method>.json``, and per pair to ``<out>/<method>/<content>__<style>.json``: a pair already
measured with the same weights (name and sha256), size and parameters is not run again (``--force``
runs it), so the slow Gatys rows are produced once, in the background, across interrupted runs;
``<out>/report.md`` is the table, ``<out>/grid.png`` the picture (rows: contents; columns: style,
then each method).

Targets (issue 5): for each trained method f_s(output, style) <= 0.5 x f_s(content, style) and
f_c(output, content) <= Gatys' f_c; RAST's f_c below SANet's with f_s within 10 % of SANet's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from benchmarks._common import ROOT, SHARED
from stylecore.errors import StyleCoreError
from stylecore.imageio import read_image, resize_max_side, write_image
from stylecore.methods import get_method
from stylecore.metrics import Metrics, checkerboard, grid_amplitude, spectral_peaks
from stylecore.models import load_encoder
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


def run_method(
    method: str, weights: str | None, pairs, size: int, gatys_steps: int, out: Path, force: bool = False
) -> dict:
    params = {"steps": gatys_steps, "optimizer": "lbfgs"} if method == "gatys" else {}
    stylizer = get_method(method).load(weights, device="auto")
    metrics = Metrics(load_encoder("vgg16-hed", device=stylizer.device))
    f_c, f_s, seconds = [], [], []
    grids: dict[str, list[float]] = {name: [] for name in IMAGE_MEASURES}
    codes: dict[Path, object] = {}
    key = {"weights": stylizer.weights_name, "sha256": stylizer.checksums, "size": size, "params": params}
    for content_path, style_path in pairs:
        stem = f"{content_path.stem}__{style_path.stem}"
        cached = out / method / f"{stem}.json"  # one file per pair: a slow method resumes where it was
        if not force and cached.is_file() and (row := json.loads(cached.read_text())).get("key") == key:
            f_c.append(row["f_c"])
            f_s.append(row["f_s"])
            seconds.append(row["seconds"])
            if not set(IMAGE_MEASURES) <= row.keys():  # measured before a measure existed: from the PNG
                image = read_image(out / method / f"{stem}.png")
                row = image_measures(image, read_image(content_path, max_side=size)) | row  # keeps the old
                cached.write_text(json.dumps(row) + "\n")
            for name, values in grids.items():
                values.append(row[name])
            continue
        content = read_image(content_path, max_side=size)
        style = read_image(style_path, max_side=size)
        if style_path not in codes:
            codes[style_path] = stylizer.encode_style(style)
        t0 = time.perf_counter()
        image = stylizer.stylize(content, codes[style_path], params=params)[0].cpu()
        seconds.append(time.perf_counter() - t0)
        write_image(image, out / method / f"{stem}.png")
        fc, fs = metrics.scores(image[None], content[None], style[None])
        f_c.append(float(fc[0]))
        f_s.append(float(fs[0]))
        row = {"key": key, "f_c": f_c[-1], "f_s": f_s[-1], "seconds": seconds[-1]}
        row |= image_measures(image, content)
        for name, values in grids.items():
            values.append(row[name])
        cached.write_text(json.dumps(row) + "\n")
        print(
            f"  {method} {stem}: f_c {f_c[-1]:.1f} f_s {f_s[-1]:.1f} grid {row['grid']:.1f} "
            f"({row['grid_amp']:.2f} levels) peaks {row['peaks']:.2f} {seconds[-1]:.1f} s",
            flush=True,
        )
    return {
        "method": method,
        "weights": stylizer.weights_name,
        "size": size,
        "pairs": len(pairs),
        "params": params,
        "f_c": sum(f_c) / len(f_c),
        "f_s": sum(f_s) / len(f_s),
        **{name: statistics.median(values) for name, values in grids.items()},
        "seconds_per_pair": sum(seconds) / len(seconds),
        "device": str(stylizer.device),
    }


def references(pairs, size: int) -> dict:
    metrics = Metrics(load_encoder("vgg16-hed"))
    fs, fc = [], []
    grid_c: dict[Path, dict[str, float]] = {}
    grid_s: dict[Path, dict[str, float]] = {}
    for content_path, style_path in pairs:
        content = read_image(content_path, max_side=size)
        style = read_image(style_path, max_side=size)
        fs.append(float(metrics.f_s(content[None], style[None])[0]))
        fc.append(float(metrics.f_c(crop_to(style, content)[None], content[None])[0]))
        # each image once: a content recurs for every style, a style for every content
        if content_path not in grid_c:
            grid_c[content_path] = grid_measures(content)
        if style_path not in grid_s:
            grid_s[style_path] = grid_measures(style)
    return {
        "f_s(content, style)": sum(fs) / len(fs),
        "f_c(style, content)": sum(fc) / len(fc),
        **{
            f"{name}({what})": statistics.median(g[name] for g in seen.values())
            for name in GRID_MEASURES
            for what, seen in (("content", grid_c), ("style", grid_s))
        },
    }


def grid(contents, styles, methods: list[str], out: Path, cell: int = 160) -> Path:
    """Rows: contents; per style a block of columns: the style, then each method's output."""
    rows = []
    for c in contents:
        row = [resize_max_side(read_image(c), cell)]
        for s in styles:
            row.append(resize_max_side(read_image(s), cell))
            for m in methods:
                path = out / m / f"{c.stem}__{s.stem}.png"
                row.append(
                    resize_max_side(read_image(path), cell) if path.is_file() else torch.ones(3, cell, cell)
                )
        rows.append(torch.cat([_pad(t, cell) for t in row], dim=2))
    sheet = torch.cat(rows, dim=1)
    return write_image(sheet, out / "grid.png")


def _pad(t: torch.Tensor, cell: int) -> torch.Tensor:
    canvas = torch.ones(3, cell, cell)
    h, w = t.shape[-2:]
    canvas[:, (cell - h) // 2 : (cell - h) // 2 + h, (cell - w) // 2 : (cell - w) // 2 + w] = t
    return canvas


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", nargs="+", default=["gatys", "adain", "sanet", "rast"])
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
        help="skip this many contents and styles of the split: choose training snapshots on "
        "--offset 4 --contents 4 --styles 4 and report on the first 4 x 4, which the choice never saw",
    )
    ap.add_argument("--gatys-steps", type=int, default=200)
    ap.add_argument("--grid", type=int, default=4, help="contents and styles shown in the grid")
    ap.add_argument("--out", type=Path, default=ROOT / "output" / "quality")
    ap.add_argument("--force", action="store_true", help="measure pairs again even when cached")
    args = ap.parse_args()
    torch.set_grad_enabled(True)
    contents, styles = split()
    start = args.offset
    contents, styles = contents[start : start + args.contents], styles[start : start + args.styles]
    if not contents or not styles:
        raise SystemExit(f"--offset {start}: the split has no contents or styles left after it")
    pairs = [(c, s) for c in contents for s in styles]
    weights = dict(w.split("=", 1) for w in args.weights)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for method in args.methods:
        path = args.out / f"{method}.json"
        settings = {"size": args.size, "pairs": len(pairs), "offset": start, "weights": weights.get(method)}
        if method == "gatys":
            settings["gatys_steps"] = args.gatys_steps
        try:
            result = run_method(
                method, weights.get(method), pairs, args.size, args.gatys_steps, args.out, args.force
            )
        except StyleCoreError as exc:
            print(f"{method}: not measured ({exc})")
            continue
        result["settings"] = settings
        path.write_text(json.dumps(result, indent=2) + "\n")
        results[method] = result
    ref = references(pairs, args.size)
    lines = [
        f"Evaluation split: {len(contents)} contents x {len(styles)} styles = {len(pairs)} pairs"
        + (f" (after the first {start} of each)" if start else "")
        + f" at {args.size} px (longest side); metrics with vgg16-hed (GUIDE section 3).",
        "",
        "| method | weights | mean f_c(output, content) | mean f_s(output, style) "
        "| f_s / f_s(content, style) | median grid score | median grid amplitude | median added peaks "
        "| s per pair | device |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m, r in results.items():
        lines.append(
            f"| {m} | {r['weights'] or '-'} | {r['f_c']:.1f} | {r['f_s']:.1f} | "
            f"{r['f_s'] / ref['f_s(content, style)']:.2f} | {r['grid']:.1f} | {r['grid_amp']:.2f} | "
            f"{r['peaks']:.2f} | {r['seconds_per_pair']:.2f} | {r['device']} |"
        )
    lines.append(
        f"| reference: content itself | - | 0 | {ref['f_s(content, style)']:.1f} | 1.00 | "
        f"{ref['grid(content)']:.1f} | {ref['grid_amp(content)']:.2f} | 0 | - | - |"
    )
    lines.append(
        f"| reference: style itself | - | {ref['f_c(style, content)']:.1f} | 0 | 0 | "
        f"{ref['grid(style)']:.1f} | {ref['grid_amp(style)']:.2f} | - | - | - |"
    )
    lines += [
        "",
        "Grid score: `stylecore.metrics.checkerboard`, the strength of patterns repeating every 2, 4 or 8 px "
        "(the decoder's upsampling periods), as a ratio over the image's own power at those frequencies; "
        "about 1 means none. Grid amplitude: `stylecore.metrics.grid_amplitude`, the RMS of the repeated "
        "2, 4 or 8 px tile in grey levels (0-255); non-periodic content leaves about 0.3-0.6. Added peaks: "
        "`stylecore.metrics.spectral_peaks` of the output with the content as reference, in grey levels RMS: "
        "narrow spectral peaks (a stripe or hatch texture, at any period) that the content does not have.",
    ]
    report = "\n".join(lines) + "\n"
    (args.out / "report.md").write_text(report)
    print(report)
    shown = [m for m in args.methods if m in results]
    print(f"grid: {grid(contents[: args.grid], styles[: args.grid], shown, args.out)}")


if __name__ == "__main__":
    main()
