"""AdaIN pairs/s at 512 px through the manifest path (the code every chunk task runs), on this machine.

    .venv/bin/python -m benchmarks.adain_throughput [--pairs 24] [--size 512]
    .venv/bin/python -m benchmarks.adain_throughput --compare adain-vgg16hed adain-vgg16hed-skip

Measured side by side in one run: style caching on vs off, fp32 vs bf16, metrics on vs off. Each
variant reads JPEGs, stylizes, encodes and writes JPEGs, and (with metrics) computes f_c and f_s.
Also prints how far bf16 outputs are from fp32 ones (mean absolute difference, PSNR).

``--compare`` times AdaIN weights against each other instead (fp32, style cache on, metrics off, the
defaults of a job): the rounds alternate between them, so a load that comes and goes on a shared
machine falls on every weights alike, and the ratio to the first is printed.
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
import time
from pathlib import Path

import torch

from benchmarks._common import MANIFESTS, content_images, installed_weights
from flows.chunks import cached_runner, run_chunk_items, runner_for
from flows.manifest import ImageJobSpec
from stylecore.imageio import read_image
from stylecore.runner import WorkItem


def bench_job(weights: str, contents: list[Path], styles: list[Path], size: int, **params) -> ImageJobSpec:
    """An AdaIN image job as a manifest would give it."""
    return ImageJobSpec(
        kind="image",
        name="bench",
        method="adain",
        weights=weights,
        contents=[str(c) for c in contents],
        styles=[str(s) for s in styles],
        size=size,
        style_size=size,
        quality=95,
        seed=0,
        **params,
    )


def compare(names: list[str], n_pairs: int, size: int, rounds: int) -> None:
    """Seconds per pair of each weights, in alternating rounds; the median round counts."""
    styles = sorted((MANIFESTS / "styles").glob("*.jpg"))
    contents = content_images(math.ceil(n_pairs / len(styles)))
    pairs = [(c, s) for c in contents for s in styles][:n_pairs]
    print(
        f"AdaIN weights side by side: {len(pairs)} pairs, max side {size}, fp32, style cache on, "
        f"metrics off, {rounds} alternating rounds, torch threads {torch.get_num_threads()}"
    )
    times: dict[str, list[float]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:  # load each model once, as a worker process does
            runner_for(bench_job(name, contents, styles, size, metrics=False), "cpu")
        for r in range(rounds):
            for name in names:
                job = bench_job(name, contents, styles, size, metrics=False)
                items = [WorkItem(c, (s,), Path(f"bench/{c.stem}__{s.stem}.jpg")) for c, s in pairs]
                t0 = time.perf_counter()
                res = run_chunk_items(
                    job, items, root=f"{tmp}/{name}-{r}", run_id="bench", chunk_id="c", device="cpu"
                )
                times[name].append((time.perf_counter() - t0) / len(items))
                assert res["done"] == len(items), res["failed"][:3]
    base = sorted(times[names[0]])[rounds // 2]
    print(f"{'weights':<28} {'s/pair (median)':>16} {'rounds':>24} {'ratio':>7}")
    for name in names:
        med = sorted(times[name])[rounds // 2]
        rounds_s = " ".join(f"{t:.3f}" for t in times[name])
        print(f"{name:<28} {med:>16.3f} {rounds_s:>24} {med / base:>7.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=24)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--compare", nargs="+", metavar="WEIGHTS", help="time these AdaIN weights side by side")
    ap.add_argument("--rounds", type=int, default=3, help="--compare: alternating rounds per weights")
    args = ap.parse_args()
    if args.compare:
        compare(args.compare, args.pairs, args.size, args.rounds)
        return
    weights = installed_weights("adain")
    styles = sorted((MANIFESTS / "styles").glob("*.jpg"))
    contents = content_images(math.ceil(args.pairs / len(styles)))
    pairs = [(c, s) for c in contents for s in styles][: args.pairs]
    print(
        f"AdaIN ({weights}), {len(pairs)} pairs ({len(contents)} contents x {len(styles)} styles), "
        f"max side {args.size}, torch threads {torch.get_num_threads()}"
    )
    print(f"{'variant':<34} {'s/pair':>7} {'pairs/s':>8}")
    tmp = tempfile.mkdtemp()
    outs: dict[str, str] = {}
    try:
        for precision in ("fp32", "bf16"):
            for metrics in (True, False):
                for cache in (True, False):
                    label = (
                        f"{precision} metrics={'on' if metrics else 'off'} cache={'on' if cache else 'off'}"
                    )
                    job = bench_job(
                        weights, contents, styles, args.size, params={"precision": precision}, metrics=metrics
                    )
                    root = f"{tmp}/{precision}-{metrics}-{cache}"
                    items = [WorkItem(c, (s,), Path(f"bench/{c.stem}__{s.stem}.jpg")) for c, s in pairs]
                    cached_runner.cache_clear()
                    # warm up the model load (once per worker process in real runs), then time the chunk
                    runner = runner_for(job, "cpu")
                    runner.cache_styles = cache
                    t0 = time.perf_counter()
                    res = run_chunk_items(job, items, root=root, run_id="bench", chunk_id="c", device="cpu")
                    dt = time.perf_counter() - t0
                    assert res["done"] == len(items), res["failed"][:3]
                    print(f"{label:<34} {dt / len(items):>7.3f} {len(items) / dt:>8.2f}", flush=True)
                    outs[f"{precision}-{metrics}"] = root
        diffs, psnrs = [], []
        for c, s in pairs:
            a = read_image(f"{outs['fp32-False']}/bench/{c.stem}__{s.stem}.jpg")
            b = read_image(f"{outs['bf16-False']}/bench/{c.stem}__{s.stem}.jpg")
            mse = float((a - b).pow(2).mean())
            diffs.append(float((a - b).abs().mean()))
            psnrs.append(10 * math.log10(1 / max(mse, 1e-12)))
        print(
            f"bf16 vs fp32 outputs: mean |diff| {sum(diffs) / len(diffs) * 255:.2f}/255, "
            f"PSNR mean {sum(psnrs) / len(psnrs):.1f} dB, min {min(psnrs):.1f} dB (after JPEG q95)"
        )
        # The metrics themselves in bf16 (as a bf16 job measures) vs fp32, on the same fp32 outputs.
        from stylecore.metrics import Metrics

        metrics = Metrics(runner.stylizer.encoder)
        rel_c, rel_s = [], []
        for c, s in pairs[:6]:
            out = read_image(f"{outs['fp32-False']}/bench/{c.stem}__{s.stem}.jpg")[None]
            content = read_image(c, max_side=args.size)[None]
            style = metrics.style_stats(read_image(s, max_side=args.size)[None])
            fc32, fs32 = metrics.scores(out, content, style)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                fc16, fs16 = metrics.scores(out, content, style)
            rel_c.append(abs(float(fc16 / fc32) - 1))
            rel_s.append(abs(float(fs16 / fs32) - 1))
        print(
            f"metrics computed in bf16 vs fp32 (same images): f_c off by {100 * max(rel_c):.2f} % at most, "
            f"f_s by {100 * max(rel_s):.2f} % at most"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
