"""Photo-realistic transfer on the corpus pairs tagged day->night and day->sunset.

    .venv/bin/python -m benchmarks.photoreal_eval [--masks] [--adain WEIGHTS] [--out output/photoreal_eval]

For every pair: SSIM(output, content) on luminance (structure kept), f_s(output, style) against
f_s(content, style) (style reached), seconds; the same for plain AdaIN as the artistic baseline.
Targets: mean SSIM >= 0.6 and mean f_s(output, style) <= 0.6 x mean f_s(content, style).
Writes a markdown table (table.md) and a grid image (rows: content | style | photoreal | AdaIN).
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from benchmarks._common import SHARED
from stylecore.imageio import read_image, write_image
from stylecore.methods import get_method
from stylecore.methods.photoreal import paired_regions
from stylecore.metrics import Metrics, ssim

TAGS = ("day->night", "day->sunset")


def pairs() -> list[dict[str, str]]:
    with open(SHARED / "photoreal" / "pairs.tsv") as fh:
        return [r for r in csv.DictReader(fh, delimiter="\t") if r["scene_tag_manual"] in TAGS]


def fit(img: torch.Tensor, h: int) -> torch.Tensor:
    w = round(img.shape[-1] * h / img.shape[-2])
    return F.interpolate(img[None], size=(h, w), mode="bilinear", antialias=True, align_corners=False)[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--masks", action="store_true", help="use the semantic masks where the pair has them")
    ap.add_argument("--adain", default=None, help="AdaIN weights for the baseline (default: installed ones)")
    ap.add_argument("--out", type=Path, default=Path("output/photoreal_eval"))
    args = ap.parse_args()
    root = SHARED / "photoreal"
    photoreal = get_method("photoreal").load(device="cpu")
    metrics = Metrics(photoreal.encoder)
    adain = None
    try:
        from benchmarks._common import installed_weights

        adain = get_method("adain").load(args.adain or installed_weights("adain"), device="cpu")
    except SystemExit as exc:
        print(f"(no AdaIN baseline: {exc})")
    rows, grid_rows = [], []
    for r in pairs():
        content, style = read_image(root / r["content"]), read_image(root / r["style"])
        t0 = time.perf_counter()
        if args.masks and r["content_seg"] and r["style_seg"]:
            _, cm, sm = paired_regions(read_image(root / r["content_seg"]), read_image(root / r["style_seg"]))
            codes = [photoreal.encode_style(style, region=sm[k]) for k in range(len(sm))]
            out = photoreal.stylize(content, codes, masks=cm[None])
        else:
            out = photoreal.stylize(content, photoreal.encode_style(style))
        seconds = time.perf_counter() - t0
        row = {
            "pair": r["pair_id"],
            "tag": r["scene_tag_manual"],
            "seconds": seconds,
            "ssim": float(ssim(out, content[None])),
            "f_s": float(metrics.f_s(out, style[None])),
            "f_s_content": float(metrics.f_s(content[None], style[None])),
        }
        panels = [content, fit(style, content.shape[-2]), out[0]]
        if adain is not None:
            a = adain.stylize(content, adain.encode_style(style))
            row.update(adain_ssim=float(ssim(a, content[None])), adain_f_s=float(metrics.f_s(a, style[None])))
            panels.append(a[0])
        rows.append(row)
        grid_rows.append(fit(torch.cat(panels, dim=2), 256))
        print(
            " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
            flush=True,
        )

    width = max(g.shape[-1] for g in grid_rows)
    grid = torch.cat([F.pad(g, (0, width - g.shape[-1]), value=1.0) for g in grid_rows], dim=1)
    args.out.mkdir(parents=True, exist_ok=True)
    write_image(grid, args.out / "grid.jpg", quality=90)
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0] if k not in ("pair", "tag")}
    lines = [
        "| pair | tag | SSIM | f_s(out, style) | f_s(content, style) | ratio | AdaIN SSIM | AdaIN f_s | s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in [*rows, {"pair": "**mean**", "tag": "", **mean}]:
        lines.append(
            f"| {r['pair']} | {r['tag']} | {r['ssim']:.3f} | {r['f_s']:.1f} | {r['f_s_content']:.1f} | "
            f"{r['f_s'] / r['f_s_content']:.2f} | {r.get('adain_ssim', float('nan')):.3f} | "
            f"{r.get('adain_f_s', float('nan')):.1f} | {r['seconds']:.1f} |"
        )
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    ratio = mean["f_s"] / mean["f_s_content"]
    print(f"\nmean SSIM {mean['ssim']:.3f} (target >= 0.6): {'met' if mean['ssim'] >= 0.6 else 'NOT met'}")
    print(f"mean f_s ratio {ratio:.3f} (target <= 0.6): {'met' if ratio <= 0.6 else 'NOT met'}")
    print(f"grid: {args.out / 'grid.jpg'} (rows: content | style | photoreal | AdaIN)")


if __name__ == "__main__":
    main()
