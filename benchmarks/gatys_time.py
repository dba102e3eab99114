"""Time Gatys (the weight-free reference) at 256 and 512 px on this machine.

    .venv/bin/python benchmarks/gatys_time.py [--sizes 256 512] [--optimizers lbfgs adam] [--steps 200]

Prints seconds per image for each size/optimiser, measured in this run, and writes the outputs to
output/bench/ so they can be looked at.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from stylecore.imageio import read_image, write_image
from stylecore.methods import get_method

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--optimizers", nargs="+", default=["lbfgs", "adam"])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--out", type=Path, default=Path("output/bench"))
    args = ap.parse_args()

    gatys = get_method("gatys").load(device="cpu")
    content_path = MANIFESTS / "photos" / "chelsea.jpg"
    style_path = MANIFESTS / "styles" / "starry_night.jpg"
    print(f"cpu: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}")
    print(f"content {content_path.name}, style {style_path.name}, {args.steps} steps, encoder vgg16-hed")
    print(f"{'size':>5} {'optimizer':>9} {'pixels':>9} {'seconds':>8} {'s/step':>7}")
    for size in args.sizes:
        content = read_image(content_path, max_side=size)
        code = gatys.encode_style(read_image(style_path, max_side=size))
        for opt in args.optimizers:
            t0 = time.perf_counter()
            out = gatys.stylize(content, code, params={"optimizer": opt, "steps": args.steps})
            dt = time.perf_counter() - t0
            write_image(out[0], args.out / f"gatys_{size}_{opt}.png")
            h, w = content.shape[-2:]
            print(f"{size:>5} {opt:>9} {h * w:>9} {dt:>8.1f} {dt / args.steps:>7.3f}", flush=True)


if __name__ == "__main__":
    main()
