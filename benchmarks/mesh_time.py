"""Time StyleMesh on one mesh, on the CPU and (when present) on CUDA, and write pictures to look at.

    .venv/bin/python -m benchmarks.mesh_time [--iterations 500] [--texture-size 1024] [--render-size 256]
        [--mesh ../shared/datasets/meshes/plain/suzanne.obj] [--style manifests/styles/starry_night.jpg]
        [--devices cpu cuda] [--precision fp32 [bf16]] [--out output/bench_mesh]

Default mesh: Spot (the textured cow of the shared datasets). A mesh without UVs is unwrapped with
xatlas first (timed separately). Prints seconds, s/iteration, and peak memory (CPU: the process's peak
RSS so far, from getrusage; CUDA: torch.cuda.max_memory_allocated), and writes per device the texture,
the stylised OBJ/MTL/PNG, a turntable strip and a before/after sheet into --out.
"""

from __future__ import annotations

import argparse
import platform
import resource
import time
from pathlib import Path

import torch

from benchmarks._common import MANIFESTS, SHARED
from stylecore.imageio import read_image, write_image
from stylecore.mesh import MeshStyleConfig, before_after, load_mesh, stylize_mesh, turntable, write_obj
from stylecore.models import load_encoder

SPOT = SHARED / "meshes" / "spot_textured" / "cow.obj"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mesh", type=Path, default=SPOT)
    ap.add_argument("--style", type=Path, default=MANIFESTS / "styles" / "starry_night.jpg")
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--texture-size", type=int, default=1024)
    ap.add_argument("--render-size", type=int, default=256)
    ap.add_argument("--views-per-step", type=int, default=4)
    ap.add_argument("--lr", type=float, default=None, help="default: MeshStyleConfig's")
    ap.add_argument("--style-weight", type=float, default=None, help="default: MeshStyleConfig's")
    ap.add_argument("--tag", default="", help="added to the output names")
    ap.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=["fp32"])
    ap.add_argument("--devices", nargs="+", default=["cpu", *(["cuda"] if torch.cuda.is_available() else [])])
    ap.add_argument("--out", type=Path, default=Path("output/bench_mesh"))
    args = ap.parse_args()

    t0 = time.perf_counter()
    mesh = load_mesh(args.mesh, atlas_size=args.texture_size)
    load_s = time.perf_counter() - t0
    style = read_image(args.style)
    name = args.mesh.stem
    print(f"cpu: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}")
    print(
        f"mesh {args.mesh.name}: {mesh.n_vertices} vertices, {mesh.n_triangles} triangles, "
        f"{'xatlas unwrap' if mesh.unwrapped else 'file UVs'}, loaded in {load_s:.1f} s; "
        f"style {args.style.name}"
    )
    extra = {k: v for k, v in (("lr", args.lr), ("style_weight", args.style_weight)) if v is not None}
    seconds: dict[tuple[str, str], float] = {}
    for device, precision in [(d, p) for d in args.devices for p in args.precision]:
        cfg = MeshStyleConfig(
            texture_size=args.texture_size,
            render_size=args.render_size,
            iterations=args.iterations,
            views_per_step=args.views_per_step,
            precision=precision,
            device=device,
            **extra,
        )
        encoder = load_encoder(cfg.encoder, device=device)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()

        def progress(step: int, losses: dict[str, float], device: str = device) -> None:
            if step % 25 == 0 or step == 1:
                print(
                    f"  {device} step {step:>4}: style {losses['style']:.4f} content {losses['content']:.4f}",
                    flush=True,
                )

        result = stylize_mesh(
            mesh,
            cfg,
            style_images=[style],
            encoder=encoder,
            cache_dir=args.out / "cache",
            on_progress=progress,
        )
        if device.startswith("cuda"):
            torch.cuda.synchronize()
            memory = f"cuda max allocated {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
        else:
            memory = f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
        print(
            f"{device} {precision}: {cfg.iterations} iterations x {cfg.views_per_step} views at "
            f"{cfg.render_size} px, texture {cfg.texture_size}, {result.n_views} views, "
            f"lr {cfg.lr}, style weight {cfg.style_weight:g}: "
            f"{result.seconds:.1f} s, {result.seconds / cfg.iterations:.2f} s/iter, {memory}",
            flush=True,
        )
        seconds[device, precision] = result.seconds
        suffix = f"_{precision}" if len(args.precision) > 1 else ""
        stem = f"{name}_{device.replace(':', '')}_{cfg.iterations}{args.tag}{suffix}"
        out = args.out
        write_image(result.texture, out / f"{stem}_texture.png")
        write_obj(mesh, result.texture, out / f"{stem}_obj", name)
        write_image(turntable(mesh, result.texture, n=8, size=256), out / f"{stem}_turntable.png")
        write_image(
            before_after(mesh, result.texture, style=style, n=4, size=256), out / f"{stem}_before_after.png"
        )
        print(f"  wrote {out}/{stem}_*.png and {stem}_obj/", flush=True)
    for device in args.devices:
        if len(args.precision) > 1:
            base = seconds[device, args.precision[0]]
            ratios = ", ".join(f"{p} {base / seconds[device, p]:.2f}x" for p in args.precision[1:])
            print(f"{device}: speed vs {args.precision[0]}, same process one after the other: {ratios}")


if __name__ == "__main__":
    main()
