"""Scale-out: the same manifest with 1 worker vs 2 workers on the work pool, throughput and efficiency.

    .venv/bin/python -m benchmarks.scaleout [--images 600] [--size 256] [--port 4321]

A private Prefect server (its own state folder, port ``--port``) gets ``stylize deploy``; then the
manifest (AdaIN at ``--size`` px, metrics off, one style) runs twice into fresh output folders:
``--shards 1`` with one worker (``--threads`` = all cores) and ``--shards 2`` with two workers (cores
split between them). Prints images/s for each and the scaling efficiency
``(rate with 2 workers) / (2 x rate with 1 worker)``; on one machine the two workers share its cores,
so efficiency here says what the process split costs or gains, not what a second machine would add.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from benchmarks._common import MANIFESTS, content_images, installed_weights

STYLIZE = str(Path(sys.executable).parent / "stylize")


def wait_online(api: str, n: int) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        r = httpx.post(f"{api}/work_pools/stylepipe-gpu/workers/filter", json={}, timeout=10)
        if sum(w["status"] == "ONLINE" for w in r.json()) >= n:
            return
        time.sleep(1)
    raise SystemExit(f"{n} worker(s) did not come online")


def run_with_workers(tmp: Path, manifest: Path, env: dict, port: int, workers: int, cores: int) -> float:
    threads = max(1, cores // workers)
    procs = [
        subprocess.Popen(
            [
                STYLIZE,
                "worker",
                "--port",
                str(port),
                "--device",
                "cpu",
                "--threads",
                str(threads),
                "--name",
                f"b{i}",
            ],
            env={**env, "PREFECT_WORKER_QUERY_SECONDS": "2"},
            stdout=(tmp / f"worker{workers}-{i}.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for i in range(workers)
    ]
    try:
        wait_online(f"http://127.0.0.1:{port}/api", workers)
        t0 = time.perf_counter()
        res = subprocess.run(
            [STYLIZE, "run", str(manifest), "--shards", str(workers), "--port", str(port),
             "--output", str(tmp / f"out{workers}")],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        seconds = time.perf_counter() - t0
        if res.returncode != 0:
            raise SystemExit(res.stdout + res.stderr)
        return seconds
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:  # a worker can take long to shut down; it is done anyway
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        time.sleep(3)  # let the server mark them offline before the next configuration


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=600)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--port", type=int, default=4321)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    weights = installed_weights("adain")
    tmp = Path(tempfile.mkdtemp())
    env = {**os.environ, "STYLEPIPE_STATE": str(tmp / "state")}
    env.pop("PREFECT_API_URL", None)
    try:
        for i, src in enumerate(content_images(args.images)):
            (tmp / "photos").mkdir(exist_ok=True)
            shutil.copyfile(src, tmp / "photos" / f"{i:04d}.jpg")
        manifest = tmp / "m.yaml"
        job = {
            "kind": "image",
            "name": "bench",
            "method": "adain",
            "weights": weights,
            "contents": ["photos/*.jpg"],
            "styles": [str(MANIFESTS / "styles" / "starry_night.jpg")],
            "size": args.size,
            "metrics": False,
        }
        manifest.write_text(
            yaml.safe_dump({"schema_version": 1, "output": "out", "chunk_size": 50, "jobs": [job]})
        )
        subprocess.run(
            [STYLIZE, "server", "start", "--port", str(args.port)], env=env, check=True, capture_output=True
        )
        subprocess.run(
            [STYLIZE, "deploy", "--port", str(args.port)], env=env, check=True, capture_output=True
        )
        one = run_with_workers(tmp, manifest, env, args.port, 1, args.cores)
        two = run_with_workers(tmp, manifest, env, args.port, 2, args.cores)
        n = args.images
        print(f"{n} images, AdaIN ({weights}) at {args.size} px, metrics off, CPU with {args.cores} cores")
        print(f"1 worker  ({args.cores} threads), 1 shard : {one:7.1f} s  {n / one:6.2f} images/s")
        print(
            f"2 workers ({max(1, args.cores // 2)} thread(s) each), 2 shards: {two:7.1f} s  "
            f"{n / two:6.2f} images/s"
        )
        print(
            f"speed-up {one / two:.2f}x, scaling efficiency {one / two / 2:.0%} "
            "(times include submission and start-up)"
        )
    finally:
        subprocess.run([STYLIZE, "server", "stop", "--port", str(args.port)], env=env, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
