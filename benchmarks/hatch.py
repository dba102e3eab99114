"""How strong a fine hatch is in folders of outputs: the 3 px pattern SANet's decoder draws on every image.

    .venv/bin/python -m benchmarks.hatch output/quality/sanet output/quality/rast [--inputs]

For each folder of PNGs (e.g. a ``benchmarks.quality`` method folder), the medians over its images of:

* ``ratio``: the largest luminance power over its frequency ring's level (``stylecore.metrics.peak_ratio``)
  at periods between ``--shortest`` and ``--longest`` px. A drawn stripe or hatch stands hundreds of
  times over its ring; the evaluation split's photos and paintings reach about 20-30 in this band.
* ``rms``: the grey levels RMS of the spectral peaks in that band (``stylecore.metrics.spectral_excess``:
  power over 30x the ring's level, with its neighbours): how much of the image the pattern is.

Unlike the quality report's added-peaks column, nothing is left out for the content's or style's own
peaks, so run it on the inputs too (``--inputs`` adds the evaluation split's contents and styles at 512 px).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from benchmarks.quality import split
from stylecore.imageio import read_image
from stylecore.metrics import frequency_radius, peak_ratio, spectral_excess


def band_measures(image: torch.Tensor, shortest: float, longest: float) -> tuple[float, float]:
    """(largest peak ratio, RMS grey levels of the spectral peaks) at periods in [shortest, longest] px."""
    h, w = image.shape[-2:]
    radius = frequency_radius(h, w)
    band = (radius >= 1 / longest) & (radius <= 1 / shortest)
    ratio = peak_ratio(image[None])[0]
    excess = spectral_excess(image[None])[0]
    return float(ratio[band].max()), float(excess[band].sum().sqrt())


def folder_row(name: str, images: list[torch.Tensor], shortest: float, longest: float) -> str:
    rows = [band_measures(im, shortest, longest) for im in images]
    ratio = statistics.median(r[0] for r in rows)
    rms = statistics.median(r[1] for r in rows)
    return f"| {name} | {len(rows)} | {ratio:.0f} | {rms:.2f} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="*", type=Path)
    ap.add_argument("--shortest", type=float, default=2.9, help="shortest period, px")
    ap.add_argument("--longest", type=float, default=3.5, help="longest period, px")
    ap.add_argument("--inputs", action="store_true", help="also the evaluation split's contents and styles")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"| images | n | median largest peak ratio, {args.shortest}-{args.longest} px | median RMS there |")
    print("| --- | --- | --- | --- |")
    if args.inputs:
        for what, paths in zip(("contents", "styles"), split(), strict=True):
            images = [read_image(p, max_side=512) for p in paths]
            print(folder_row(f"evaluation {what}", images, args.shortest, args.longest))
    for folder in args.folders:
        images = [read_image(p) for p in sorted(folder.glob("*.png"))]
        if not images:
            raise SystemExit(f"{folder}: no PNG images")
        print(folder_row(str(folder), images, args.shortest, args.longest), flush=True)


if __name__ == "__main__":
    main()
