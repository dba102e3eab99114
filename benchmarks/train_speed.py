"""Training step time side by side: NCHW vs channels_last, fp32 vs bf16 autocast, one process.

    .venv/bin/python -m benchmarks.train_speed [--method adain] [--size 128] [--batch 8] [--steps 6]
        [--threads 2]

Runs the real :class:`stylecore.train.loop.Trainer` on ../shared/datasets (a small slice of it) for
``--steps`` steps per variant after one warm-up step and prints seconds per step and the ratio to
the first variant. Variants run interleaved twice (A B C D A B C D) so a load change on the shared
machine hits all of them; the best of the two rounds is reported.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from benchmarks._common import SHARED
from stylecore.models import load_encoder
from stylecore.train import loop
from stylecore.train.loop import TrainConfig, Trainer

VARIANTS = [
    ("NCHW fp32", dict(channels_last=False, amp=False)),
    ("NCHW bf16", dict(channels_last=False, amp=True)),
    ("NHWC fp32", dict(channels_last=True, amp=False)),
    ("NHWC bf16", dict(channels_last=True, amp=True)),
]


def slice_folder(src: Path, dst: Path, n: int) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for p in sorted(src.iterdir())[:n]:
        (dst / p.name).symlink_to(p.resolve())
    return dst


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", default="adain", choices=["adain", "sanet", "rast"])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    # measure bf16 itself even on a CPU where training falls back to fp32 (no native bf16 kernels)
    native = loop.cpu_has_bf16()
    loop.cpu_has_bf16 = lambda: True
    encoder = load_encoder("vgg16-hed")
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        content = slice_folder(SHARED / "content", Path(tmp) / "c", 32)
        style = slice_folder(SHARED / "style", Path(tmp) / "s", 32)
        for _round in range(2):
            for name, opts in VARIANTS:
                cfg = TrainConfig(
                    method=args.method, content_dirs=[content], style_dirs=[style], steps=10**6,
                    batch=args.batch, size=args.size, **opts,
                )  # fmt: skip
                trainer = Trainer(cfg, Path(tmp) / "run.ckpt", device="cpu", encoder=encoder)
                trainer.train_step()  # warm-up (oneDNN primitive creation)
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    trainer.train_step()
                per_step = (time.perf_counter() - t0) / args.steps
                best[name] = min(best.get(name, float("inf")), per_step)
    base = best[VARIANTS[0][0]]
    print(
        f"{args.method}, batch {args.batch} at {args.size} px, {args.threads} threads, CPU "
        f"({'native' if native else 'no native'} bf16 kernels; training uses bf16 only with them)"
    )
    print(f"{'variant':<10} {'s/step':>7} {'speed-up':>9}")
    for name, _ in VARIANTS:
        print(f"{name:<10} {best[name]:7.2f} {base / best[name]:8.2f}x")


if __name__ == "__main__":
    main()
