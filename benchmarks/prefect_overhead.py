"""Prefect overhead: a 300-image manifest through the flow vs the same work in a plain library loop.

    .venv/bin/python benchmarks/prefect_overhead.py [--images 300] [--size 256] [--port 4200]

Both sides do the same work (read, AdaIN, write JPEG, f_c/f_s): the loop calls the library's
ImageRunner directly; the flow adds planning, chunk tasks on the real local Prefect server (started
if needed, start-up not counted), progress artifacts, atomic store writes, Parquet metrics and the run
record. Prints both times and the overhead in percent (target: <= 5 %).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks._common import MANIFESTS, content_images, installed_weights


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--port", type=int, default=4200)
    args = ap.parse_args()
    weights = installed_weights("adain")
    tmp = Path(tempfile.mkdtemp())
    try:
        photos = tmp / "photos"
        photos.mkdir()
        for i, src in enumerate(content_images(args.images)):
            shutil.copyfile(src, photos / f"{i:04d}.jpg")
        shutil.copyfile(MANIFESTS / "styles" / "starry_night.jpg", tmp / "style.jpg")
        manifest = tmp / "m.yaml"
        manifest.write_text(
            yaml.safe_dump(
                {
                    "schema_version": 1,
                    "output": "flow_out",
                    "device": "cpu",
                    "chunk_size": 100,
                    "jobs": [
                        {
                            "kind": "image",
                            "name": "bench",
                            "method": "adain",
                            "weights": weights,
                            "contents": ["photos/*.jpg"],
                            "styles": ["style.jpg"],
                            "size": args.size,
                        }
                    ],
                }
            )
        )

        # 1. the plain loop: the library alone, same items, same model settings
        from flows.manifest import load_manifest, plan
        from stylecore.methods import get_method
        from stylecore.metrics import Metrics
        from stylecore.models import load_encoder  # noqa: F401  (imported before timing, like the flow's worker)
        from stylecore.runner import ImageRunner, WorkItem

        p = plan(load_manifest(manifest), manifest)
        stylizer = get_method("adain").load(weights, device="cpu")
        runner = ImageRunner(stylizer, size=args.size, metrics=Metrics(stylizer.encoder))

        def plain_loop(tag: str) -> float:
            items = [WorkItem(i.content, i.styles, tmp / tag / i.output) for i in p.items]
            t0 = time.perf_counter()
            failed = sum(1 for r in runner.run(items) if r.error)
            assert failed == 0
            return time.perf_counter() - t0

        # 2. the flow, through the CLI on the real server (a fresh process: it loads the model itself,
        #    as every worker does once; that load is part of the flow's time)
        stylize = str(Path(sys.executable).parent / "stylize")
        subprocess.run(
            [stylize, "server", "start", "--port", str(args.port)], check=True, capture_output=True
        )

        def flow() -> float:
            t0 = time.perf_counter()
            res = subprocess.run(
                [stylize, "run", str(manifest), "--port", str(args.port)],
                capture_output=True,
                text=True,
                env={**os.environ},
            )
            if res.returncode != 0:
                raise SystemExit(res.stdout + res.stderr)
            return time.perf_counter() - t0

        # loop, flow, loop: the two loops bracket the flow so warm-up and machine drift show up
        loop1 = plain_loop("loop1")
        flow_s = flow()
        loop2 = plain_loop("loop2")
        loop_s = (loop1 + loop2) / 2
        n = len(p.items)
        print(f"{n} images, AdaIN ({weights}) at {args.size} px, CPU")
        print(f"plain library loop : {loop1:8.1f} s and {loop2:8.1f} s  (mean {n / loop_s:.2f} images/s)")
        print(f"Prefect flow (CLI) : {flow_s:8.1f} s  ({n / flow_s:.2f} images/s), incl. start + model load")
        (record,) = (tmp / "flow_out" / "_runs").glob("*/record.json")
        inner = json.loads(record.read_text())["seconds"]
        print(
            f"  of which the flow run itself (plan, tasks, store, artifacts): {inner:.1f} s "
            f"-> {100 * (inner - loop_s) / loop_s:+.1f} % vs the loop"
        )
        print(
            f"overhead vs mean loop: {100 * (flow_s - loop_s) / loop_s:+.1f} %  "
            f"(loop-to-loop spread {100 * abs(loop2 - loop1) / loop_s:.1f} %)"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
