"""The Prefect flow: one flow run per manifest, one task per chunk of about ``chunk_size`` items.

The flow validates and plans (nothing starts if the manifest has a problem), skips outputs that are
already complete in the store, runs the rest in chunks, consolidates ``metrics.parquet``, writes a
run record, and publishes a summary table artifact. Each chunk task publishes a progress artifact.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import time
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from flows.chunks import item_to_dict, run_chunk_items
from flows.manifest import (
    AUGMENT_SETTINGS,
    AnyJob,
    AugmentJobSpec,
    MeshJobSpec,
    Plan,
    job_params,
    load_manifest,
    plan,
)
from flows.meshes import run_mesh_item
from flows.store import OutputStore

PROGRESS_EVERY_S = 5.0


@task(name="stylize-chunk", task_run_name="{chunk_id}")
def stylize_chunk(
    job: dict[str, Any], items: list[dict[str, Any]], root: str, run_id: str, chunk_id: str, device: str
) -> dict[str, Any]:
    artifact = create_progress_artifact(
        0.0, description=f"{chunk_id}: {len(items)} items of job {job['name']}"
    )
    last = [time.monotonic()]

    def progress(n: int, total: int) -> None:
        # Every few seconds, not every few items: each update is an API call, and on a small machine
        # that shares its cores with the server, API traffic is what the flow's overhead is made of.
        if time.monotonic() - last[0] >= PROGRESS_EVERY_S or n == total:
            update_progress_artifact(artifact, 100.0 * n / total)
            last[0] = time.monotonic()

    return run_chunk_items(
        job, items, root=root, run_id=run_id, chunk_id=chunk_id, device=device, on_progress=progress
    )


@task(name="stylize-mesh", task_run_name="{chunk_id}")
def stylize_mesh_item(
    job: dict[str, Any], item: dict[str, Any], root: str, run_id: str, chunk_id: str, device: str
) -> dict[str, Any]:
    artifact = create_progress_artifact(0.0, description=f"{chunk_id}: StyleMesh, job {job['name']}")
    last = [time.monotonic()]

    def progress(step: int, total: int, losses: dict[str, float]) -> None:
        if time.monotonic() - last[0] >= PROGRESS_EVERY_S or step == total:
            update_progress_artifact(artifact, 100.0 * step / total)
            last[0] = time.monotonic()

    cache = str(state_cache_dir())
    return run_mesh_item(
        job, item, root=root, run_id=run_id, device=device, cache_dir=cache, on_progress=progress
    )


def state_cache_dir() -> Path:
    """Per-mesh view-map caches live next to the Prefect state (``STYLEPIPE_STATE``), not in outputs."""
    from flows.server import state_dir

    return state_dir() / "cache" / "mesh-views"


def job_payload(spec: AnyJob) -> dict[str, Any]:
    """What a worker needs of a job, as plain JSON data."""
    if isinstance(spec, MeshJobSpec):
        return {
            "name": spec.name,
            "kind": "mesh",
            "method": spec.method,
            "params": dict(spec.params),
            "turntable_views": spec.turntable_views,
            "preview_size": spec.preview_size,
        }
    return {
        "name": spec.name,
        "method": spec.method,
        "weights": spec.weights,
        "params": job_params(spec),
        "size": spec.size,
        "style_size": spec.style_size,
        "quality": spec.quality,
        "seed": spec.seed,
        "metrics": spec.metrics,
        "batch": spec.batch,
    }


def make_chunks(p: Plan, done: set[str], chunk_size: int) -> list[tuple[dict[str, Any], str, list[dict]]]:
    """(job payload, chunk id, items) for everything not yet done, content by content: a content's
    metrics features are reused for all its styles, same-size neighbours batch (``stylize_each`` takes
    a different style per sample), and style codes are cached per process whatever the order."""
    chunks = []
    for job in p.jobs:
        todo = [i for i in job.items if i.output.as_posix() not in done]
        todo.sort(key=lambda i: (str(i.content), tuple(map(str, i.styles))))
        size = 1 if isinstance(job.spec, MeshJobSpec) else chunk_size  # a mesh is minutes of work
        for k in range(0, len(todo), size):
            part = todo[k : k + size]
            chunks.append(
                (
                    job_payload(job.spec),
                    f"{job.spec.name}-{k // size:04d}",
                    [item_to_dict(i) for i in part],
                )
            )
    return chunks


def write_labels(store: OutputStore, job: str, labels: tuple[dict[str, Any], ...], complete: set[str]) -> int:
    """``<job>/labels.csv``: one row per finished copy (path relative to the job folder, label, source,
    style, alpha, copy), loadable with pandas; the folder itself loads with ImageFolder."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(
        buf, fieldnames=["path", "label", "class_index", "source", "style", "alpha", "copy"]
    )
    writer.writeheader()
    n = 0
    for row in labels:
        if f"{job}/{row['path']}" in complete:
            writer.writerow(row)
            n += 1
    store.write_bytes(f"{job}/labels.csv", buf.getvalue().encode())
    return n


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("stylepipe", "torch", "prefect", "pillow", "numpy"):
        try:
            out[pkg] = version(pkg)
        except Exception:
            out[pkg] = "unknown"
    return out


def shard_of(output: str, shards: int) -> int:
    """The shard an output belongs to: a hash of its name, so shards stay stable as a manifest grows."""
    return int(hashlib.sha256(output.encode()).hexdigest()[:12], 16) % shards


def only_shard(p: Plan, shard: int, shards: int) -> Plan:
    """``p`` restricted to the items of one shard (labels of augment jobs follow their items)."""
    jobs = []
    for job in p.jobs:
        keep = [k for k, item in enumerate(job.items) if shard_of(item.output.as_posix(), shards) == shard]
        labels = tuple(job.labels[k] for k in keep) if job.labels else ()
        jobs.append(dataclasses.replace(job, items=tuple(job.items[k] for k in keep), labels=labels))
    return dataclasses.replace(p, jobs=tuple(jobs))


@flow(name="stylize-manifest", task_runner=ThreadPoolTaskRunner(max_workers=1), log_prints=False)
def stylize_manifest(
    manifest: str,
    output: str | None = None,
    device: str | None = None,
    shard: int | None = None,
    shards: int = 1,
) -> dict[str, Any]:
    """Run every job of a manifest (or one shard of it); returns counts and the output root.

    The device is the parameter, else the worker's ``STYLEPIPE_DEVICE`` (``stylize worker --device``),
    else the manifest's.
    """
    logger = get_run_logger()
    started = time.time()
    path = Path(manifest).resolve()
    m = load_manifest(path)
    p = full = plan(m, path, output=output)
    if shard is not None:
        if not 0 <= shard < shards:
            raise ValueError(f"shard {shard} is not in 0..{shards - 1}")
        p = only_shard(full, shard, shards)
    dev = device or os.environ.get("STYLEPIPE_DEVICE") or m.device
    store = OutputStore(p.output_root)
    run_id = flow_run.get_id() or uuid.uuid4().hex
    done = store.completed()
    planned = {i.output.as_posix() for i in p.items}
    skipped = len(planned & done)
    chunks = make_chunks(p, done, m.chunk_size)
    logger.info(
        "%d items planned, %d already complete, %d to do in %d chunk(s); output %s",
        len(planned),
        skipped,
        len(planned) - skipped,
        len(chunks),
        p.output_root,
    )
    store.write_bytes(f"_runs/{run_id}/manifest.yaml", path.read_bytes())
    for job in p.jobs:
        if job.settings is not None:  # augment jobs, before any copy exists: the folder's settings
            store.write_json(f"{job.spec.name}/{AUGMENT_SETTINGS}", job.settings)

    futures = [
        stylize_mesh_item.submit(job, items[0], p.output_root, run_id, cid, dev)
        if job.get("kind") == "mesh"
        else stylize_chunk.submit(job, items, p.output_root, run_id, cid, dev)
        for job, cid, items in chunks
    ]
    results, crashed = [], []
    for (job, cid, items), fut in zip(chunks, futures, strict=True):
        state = fut.wait() or fut.state
        if state.is_completed():
            results.append(fut.result())
        else:  # a crashed task loses nothing finished: its items are redone on the next run
            crashed.append(
                {"chunk": cid, "job": job["name"], "items": len(items), "error": str(state.message)}
            )
    rows = store.consolidate()
    complete = store.completed()
    for job in full.jobs:  # all shards' finished copies, so any shard's file is a correct one
        if isinstance(job.spec, AugmentJobSpec):
            write_labels(store, job.spec.name, job.labels, complete)
    failed = [f for r in results for f in r["failed"]]
    per_job: dict[str, dict[str, Any]] = {}
    for job in p.jobs:
        per_job[job.spec.name] = {
            "job": job.spec.name,
            "method": job.spec.method,
            "planned": len(job.items),
            "skipped": 0,
            "done": 0,
            "failed": 0,
            "seconds": 0.0,
        }
        per_job[job.spec.name]["skipped"] = sum(1 for i in job.items if i.output.as_posix() in done)
    for r in results:
        pj = per_job[r["job"]]
        pj["done"] += r["done"]
        pj["failed"] += len(r["failed"])
        pj["seconds"] = round(pj["seconds"] + r["seconds"], 1)
    summary = {
        "run_id": run_id,
        "shard": None if shard is None else f"{shard}/{shards}",
        "output": p.output_root,
        "planned": len(planned),
        "skipped": skipped,
        "done": sum(r["done"] for r in results),
        "failed": len(failed),
        "crashed_chunks": len(crashed),
        "metrics_rows": rows,
        "seconds": round(time.time() - started, 1),
        "failures": failed[:200],
    }
    store.write_json(
        f"_runs/{run_id}/record.json",
        {
            **summary,
            "manifest": str(path),
            "device": dev,
            "versions": versions(),
            "jobs": list(per_job.values()),
            "crashed": crashed,
            "weights": {r["job"]: {"name": r["weights"], "sha256": r["weights_sha256"]} for r in results},
        },
    )
    create_table_artifact(
        list(per_job.values()),
        key="run-summary",
        description=f"{summary['done']} done, {summary['skipped']} skipped, "
        f"{summary['failed']} failed -> {p.output_root}",
    )
    if failed:
        create_table_artifact(
            [{"output": f["output"], "error": f["error"]} for f in failed[:200]],
            key="run-failures",
            description=f"{len(failed)} failed item(s)",
        )
    logger.info("done: %s", json.dumps({k: v for k, v in summary.items() if k != "failures"}))
    return summary
