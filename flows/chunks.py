"""Running one chunk of a job inside a worker process: model cache, store writes, metrics rows.

Plain Python (no Prefect), so it is testable on its own; :mod:`flows.pipeline` wraps it in a task.
Models are loaded once per worker process and kept (``functools.lru_cache``), and each runner keeps
its style codes, so a style is encoded once per process, not once per pair.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import torch

from flows.manifest import ImageLikeJob, job_params
from flows.store import OutputStore
from stylecore.device import resolve_device
from stylecore.imageio import encode_image
from stylecore.methods import Stylizer, get_method
from stylecore.metrics import Metrics
from stylecore.models import load_encoder
from stylecore.runner import ImageRunner, WorkItem

METRICS_ENCODER = "vgg16-hed"  # every f_c / f_s in the store is computed with this one encoder
FLUSH_EVERY_S = 20.0  # metrics rows reach the store at least this often (crash loses at most this)


@lru_cache(maxsize=4)
def stylizer_for(method: str, weights: str | None, device: str) -> Stylizer:
    return get_method(method).load(weights, device=device)


@lru_cache(maxsize=2)
def metrics_for(device: str) -> Metrics:
    return Metrics(load_encoder(METRICS_ENCODER, device=device))


def runner_for(job: ImageLikeJob, device: str) -> ImageRunner:
    """The job's runner, shared by every chunk of the same settings in this process."""
    settings = {
        "method": job.method,
        "weights": job.weights,
        "params": job_params(job),
        "size": job.size,
        "style_size": job.style_size,
        "quality": job.quality,
        "seed": job.seed,
        "metrics": job.metrics,
    }
    return cached_runner(json.dumps(settings, sort_keys=True), device)


@lru_cache(maxsize=8)  # keyed by the settings as JSON: a job's params dict is not hashable
def cached_runner(settings_json: str, device: str) -> ImageRunner:
    job = json.loads(settings_json)
    stylizer = stylizer_for(job["method"], job["weights"], device)
    if not job["metrics"]:
        metrics = None
    elif stylizer.encoder.name == METRICS_ENCODER:
        metrics = Metrics(stylizer.encoder)  # same weights: no second copy of the encoder
    else:
        metrics = metrics_for(device)
    return ImageRunner(
        stylizer,
        params=job["params"],
        size=job["size"],
        style_size=job["style_size"],
        quality=job["quality"],
        seed=job["seed"],
        metrics=metrics,
    )


def run_chunk_items(
    job: ImageLikeJob,
    items: Sequence[WorkItem],
    *,
    root: str,
    run_id: str,
    chunk_id: str,
    device: str,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Stylize the items, write each image atomically, record a metrics row per item (errors too)."""
    dev = str(resolve_device(device))
    store = OutputStore(root)
    runner = runner_for(job, dev)
    stylizer = runner.stylizer
    sha = ",".join(f"{k}:{v}" for k, v in sorted(stylizer.checksums.items())) or None
    params = job_params(job)

    def write(image: torch.Tensor, item: WorkItem) -> None:
        rel = item.output.as_posix()
        store.write_bytes(rel, encode_image(image, item.output.suffix, quality=job.quality, name=rel))

    rows: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    last_flush = time.monotonic()
    start = time.monotonic()
    for n, result in enumerate(runner.run(items, write, batch_size=job.batch), start=1):
        item = result.item
        output, content = item.output.as_posix(), str(item.content)
        rows.append(
            {
                "run_id": run_id,
                "job": job.name,
                "output": output,
                "content": content,
                "style": "+".join(map(str, item.styles)),
                "method": job.method,
                "params": json.dumps({**params, **dict(item.params)}, sort_keys=True),
                "weights": stylizer.weights_name,
                "weights_sha256": sha,
                "encoder": METRICS_ENCODER if runner.metrics else None,
                "f_c": result.extra.get("f_c"),
                "f_s": result.extra.get("f_s"),
                "ssim": result.extra.get("ssim"),
                "seconds": result.seconds,
                "device": dev,
                "error": result.error,
                "finished_at": datetime.now(UTC).isoformat(),
            }
        )
        if result.error:
            failed.append({"output": output, "content": content, "error": result.error})
        if time.monotonic() - last_flush > FLUSH_EVERY_S or n == len(items):
            store.write_metrics_part(run_id, chunk_id, rows)
            rows, last_flush = [], time.monotonic()
        if on_progress:
            on_progress(n, len(items))
    return {
        "chunk": chunk_id,
        "job": job.name,
        "items": len(items),
        "done": len(items) - len(failed),
        "failed": failed,
        "seconds": time.monotonic() - start,
        "weights": stylizer.weights_name,
        "weights_sha256": sha,
    }
