"""Augmentation throughput: the offline augment job (through the flow) and StyleAugment on batches.

    .venv/bin/python -m benchmarks.augment_throughput [--images 64] [--size 224] [--batch 8] [--port 4200]

1. Offline: an ImageFolder of ``--images`` photos in 4 classes, one stylized copy each at ``--size``
   px through ``stylize run`` on the local Prefect server (started if needed, start-up not counted):
   images/s for the whole run (process start and model load included) and for the flow run itself.
2. On the fly: ``StyleAugment(p=1)`` on a batch of 32 images at 224 px, fp32 and bf16, on the CPU
   (and CUDA when present): images/s after one warm-up call, median of 3 calls.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

from benchmarks._common import MANIFESTS, content_images, installed_weights


def offline(args, weights: str, tmp: Path) -> None:
    for i, src in enumerate(content_images(args.images)):
        dst = tmp / "data" / f"class{i % 4}" / f"{i:04d}.jpg"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    job = {
        "kind": "augment",
        "name": "aug",
        "source": "data",
        "styles": [str(MANIFESTS / "styles")],
        "method": "adain",
        "weights": weights,
        "alpha": [0.5, 1.0],
        "size": args.size,
        "batch": args.batch,
    }
    manifest = tmp / "m.yaml"
    manifest.write_text(
        yaml.safe_dump({"schema_version": 1, "output": "out", "device": "cpu", "jobs": [job]})
    )
    stylize = str(Path(sys.executable).parent / "stylize")
    subprocess.run([stylize, "server", "start", "--port", str(args.port)], check=True, capture_output=True)
    t0 = time.perf_counter()
    res = subprocess.run(
        [stylize, "run", str(manifest), "--port", str(args.port)], capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(res.stdout + res.stderr)
    (record,) = (tmp / "out" / "_runs").glob("*/record.json")
    inner = json.loads(record.read_text())["seconds"]
    n = args.images
    print(f"offline augment job: {n} images at {args.size} px, batch {args.batch}, AdaIN ({weights}), CPU")
    print(f"  whole command (process start, model load, flow): {wall:7.1f} s  {n / wall:6.2f} images/s")
    print(f"  flow run itself:                                 {inner:7.1f} s  {n / inner:6.2f} images/s")


def on_the_fly(weights: str, device: str) -> None:
    from stylecore.augment import StyleAugment
    from stylecore.methods import get_method

    stylizer = get_method("adain").load(weights, device=device)
    files = content_images(32)
    from stylecore.imageio import read_image

    batch = torch.stack(
        [torch.nn.functional.interpolate(read_image(f)[None], size=(224, 224), mode="area")[0] for f in files]
    ).to(device)
    for precision in ("fp32", "bf16"):
        aug = StyleAugment(
            styles=[MANIFESTS / "styles"], p=1.0, seed=0, stylizer=stylizer, params={"precision": precision}
        )
        aug(batch)  # warm-up
        times = []
        for _ in range(3):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            aug(batch)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        t = statistics.median(times)
        print(
            f"StyleAugment batch 32 x 224 px, {precision}, {device}: {t:6.2f} s/batch  {32 / t:7.1f} images/s"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--port", type=int, default=4200)
    ap.add_argument("--skip-offline", action="store_true")
    args = ap.parse_args()
    weights = installed_weights("adain")
    tmp = Path(tempfile.mkdtemp())
    try:
        if not args.skip_offline:
            offline(args, weights, tmp)
        on_the_fly(weights, "cpu")
        if torch.cuda.is_available():
            on_the_fly(weights, "cuda")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
