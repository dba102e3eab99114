"""What each loss network calls "the painting's style": Gatys drawn on vgg16-hed and on vgg16-imagenet.

    .venv/bin/python -m benchmarks.loss_network [--pairs 2] [--size 320] [--steps 150]
        [--figure docs/images/loss_network.jpg]

Gatys optimisation has no trained weights, so its output shows what a loss network's style statistics
ask for and nothing else. For the first ``--pairs`` (content, style) pairs of the evaluation split
(content i with style i + 1), the same photo, painting and settings are optimised on both trunks; the
script prints each output's f_s ratio, f_s(output, style) / f_s(content, style), on both trunks (each
network scores its own output best, so the two numbers disagree about which is closer to the
painting: look at the figure) and writes a row per pair: content, style, Gatys on vgg16-hed, Gatys on
vgg16-imagenet.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from benchmarks._common import ROOT
from benchmarks.quality import _pad, split
from stylecore.imageio import read_image, resize_max_side, write_image
from stylecore.methods import get_method
from stylecore.metrics import Metrics
from stylecore.models import load_encoder

ENCODERS = ("vgg16-hed", "vgg16-imagenet")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--size", type=int, default=320, help="longest side in pixels")
    ap.add_argument("--steps", type=int, default=150, help="LBFGS evaluations")
    ap.add_argument("--figure", type=Path, default=ROOT / "output" / "bench" / "loss_network.jpg")
    args = ap.parse_args()
    contents, styles = split()
    pairs = [(contents[i], styles[(i + 1) % len(styles)]) for i in range(args.pairs)]
    metrics = {name: Metrics(load_encoder(name)) for name in ENCODERS}
    gatys = {name: get_method("gatys").load(encoder=name, device="cpu") for name in ENCODERS}
    cell = 256
    rows = []
    print(f"Gatys, {args.steps} LBFGS steps at {args.size} px; f_s ratio on each trunk (lower: closer)")
    print("| pair | drawn on | f_s ratio, vgg16-hed | f_s ratio, vgg16-imagenet | seconds |")
    print("| --- | --- | --- | --- | --- |")
    for content_path, style_path in pairs:
        content = read_image(content_path, max_side=args.size)
        style = read_image(style_path, max_side=args.size)
        base = {n: float(m.f_s(content[None], style[None])[0]) for n, m in metrics.items()}
        row = [resize_max_side(content, cell), resize_max_side(style, cell)]
        for name, method in gatys.items():
            t0 = time.perf_counter()
            out = method.stylize(content, method.encode_style(style), params={"steps": args.steps})[0]
            seconds = time.perf_counter() - t0
            ratios = [float(m.f_s(out[None], style[None])[0]) / base[n] for n, m in metrics.items()]
            print(
                f"| {content_path.stem} x {style_path.stem} | {name} | {ratios[0]:.3f} | {ratios[1]:.3f} "
                f"| {seconds:.0f} |",
                flush=True,
            )
            row.append(resize_max_side(out, cell))
        rows.append(torch.cat([_pad(t, cell) for t in row], dim=2))
    print(f"figure: {write_image(torch.cat(rows, dim=1), args.figure, quality=85)}")


if __name__ == "__main__":
    main()
