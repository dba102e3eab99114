"""The Prefect flow: one flow run per manifest, one task per chunk of about ``chunk_size`` items.

The flow validates and plans once (nothing starts if the manifest has a problem; the CLI, which plans
before it starts a run, hands its plan over with :func:`given_plan`), skips outputs that are already
complete in the store, runs the rest in chunks, consolidates ``metrics.parquet``, writes a
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
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.runtime import deployment, flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from flows.chunks import run_chunk_items
from flows.manifest import (
    AUGMENT_SETTINGS,
    AnyJob,
    AugmentJobSpec,
    ImageLikeJob,
    MeshJobSpec,
    Plan,
    load_manifest,
    manifest_label,
    plan,
)
from flows.meshes import run_mesh_item
from flows.runs import local_run
from flows.server import state_dir
from flows.store import OutputStore
from stylecore.runner import WorkItem

PROGRESS_EVERY_S = 5.0


@task(name="stylize-chunk", task_run_name="{chunk_id}")
def stylize_chunk(
    job: ImageLikeJob, items: list[WorkItem], root: str, run_id: str, chunk_id: str, device: str
) -> dict[str, Any]:
    artifact = create_progress_artifact(0.0, description=f"{chunk_id}: {len(items)} items of job {job.name}")
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
    job: MeshJobSpec, item: WorkItem, root: str, run_id: str, chunk_id: str, device: str
) -> dict[str, Any]:
    artifact = create_progress_artifact(0.0, description=f"{chunk_id}: StyleMesh, job {job.name}")
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
    return state_dir() / "cache" / "mesh-views"


@dataclasses.dataclass(frozen=True)
class Chunk:
    """One task's work: items of one job."""

    job: AnyJob
    id: str
    items: tuple[WorkItem, ...]


def make_chunks(p: Plan, done: set[str], chunk_size: int) -> list[Chunk]:
    """Chunks of everything not yet done, content by content: a content's metrics features are
    reused for all its styles, same-size neighbours batch (``stylize_each`` takes a different style
    per sample), and style codes are cached per process whatever the order."""
    chunks = []
    for job in p.jobs:
        todo = [i for i in job.items if i.output.as_posix() not in done]
        todo.sort(key=lambda i: (str(i.content), tuple(map(str, i.styles))))
        size = 1 if isinstance(job.spec, MeshJobSpec) else chunk_size  # a mesh is minutes of work
        for k in range(0, len(todo), size):
            chunks.append(Chunk(job.spec, f"{job.spec.name}-{k // size:04d}", tuple(todo[k : k + size])))
    return chunks


# ---- one plan per run --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Planned:
    plan: Plan
    output: str | None


_PLANNED: ContextVar[_Planned | None] = ContextVar("stylepipe_planned", default=None)


@contextmanager
def given_plan(p: Plan, output: str | None = None) -> Iterator[None]:
    """Manifest flows called inside this block (in this process) run ``p`` instead of planning again.

    The CLI plans before any flow run exists, so that a bad manifest is refused without leaving a
    failed run behind; this hands that plan to the flow. ``output`` is the override it was planned with.
    """
    token = _PLANNED.set(_Planned(p, output))
    try:
        yield
    finally:
        _PLANNED.reset(token)


def plan_of(path: Path, output: str | None) -> Plan:
    """The plan handed over by :func:`given_plan` for this manifest and output, else a fresh one (a
    worker's shard run or a scheduled run: a process of its own that only has the manifest's path)."""
    handed = _PLANNED.get()
    if handed is not None and handed.plan.source == path and handed.output == output:
        return handed.plan
    return plan(load_manifest(path), path, output=output)


def run_title(manifest: Path) -> str:
    """``<manifest name or file stem> <local start time>``, e.g. ``demo 2026-12-02 15:04``."""
    return f"{manifest_label(manifest)} {datetime.now().astimezone():%Y-%m-%d %H:%M}"


def run_name() -> str:
    """The run's title, plus the shard; a shard run keeps the name its parent flow gave it."""
    params = flow_run.parameters
    path = Path(params["manifest"])
    current = flow_run.get_name() or ""
    if deployment.id and current.startswith(f"{manifest_label(path)} "):
        return current
    name = run_title(path)
    if params.get("shard") is not None:
        name += shard_suffix(params["shard"], params.get("shards", 1))
    return name


def shard_suffix(shard: int, shards: int) -> str:
    return f" shard {shard} of {shards}"


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


@flow(
    name="stylize-manifest",
    flow_run_name=run_name,
    task_runner=ThreadPoolTaskRunner(max_workers=1),
    log_prints=False,
)
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
    run_id = flow_run.get_id() or uuid.uuid4().hex
    with local_run(run_id, manifest):
        return _run_manifest(Path(manifest).resolve(), output, device, shard, shards, run_id)


def _run_manifest(
    path: Path, output: str | None, device: str | None, shard: int | None, shards: int, run_id: str
) -> dict[str, Any]:
    logger = get_run_logger()
    started = time.time()
    p = full = plan_of(path, output)
    m = full.manifest
    if shard is not None:
        if not 0 <= shard < shards:
            raise ValueError(f"shard {shard} is not in 0..{shards - 1}")
        p = only_shard(full, shard, shards)
    dev = device or os.environ.get("STYLEPIPE_DEVICE") or m.device
    store = OutputStore(p.output_root)
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
        stylize_mesh_item.submit(c.job, c.items[0], p.output_root, run_id, c.id, dev)
        if isinstance(c.job, MeshJobSpec)
        else stylize_chunk.submit(c.job, list(c.items), p.output_root, run_id, c.id, dev)
        for c in chunks
    ]
    results, crashed = [], []
    for c, fut in zip(chunks, futures, strict=True):
        state = fut.wait() or fut.state
        if state.is_completed():
            results.append(fut.result())
        else:  # a crashed task loses nothing finished: its items are redone on the next run
            crashed.append(
                {"chunk": c.id, "job": c.job.name, "items": len(c.items), "error": str(state.message)}
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
