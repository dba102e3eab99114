"""Scale-out on Prefect's own machinery: a process work pool, a deployment of the manifest flow,
workers that pull from the pool, and a parent flow that runs a manifest as N shard flow runs.

* ``deploy`` creates the pool (type ``process``), the deployment ``stylize-manifest/stylepipe`` (any
  manifest, whole or one shard; the code comes from the installed ``stylepipe`` package, so every
  worker machine needs it installed, plus the inputs and the output store at the same paths/URLs),
  and an automation that marks a flow run Crashed when its heartbeats stop (a dead worker machine).
* ``stylize_sharded`` (the parent flow) splits the items by a hash of their output name, submits one
  shard run per shard with ``run_deployment(..., timeout=0)`` and an idempotency key (submitting again
  for the same parent returns the same run), waits, re-submits shards that crashed or failed (their
  finished outputs are skipped, so nothing is duplicated), then consolidates the metrics and publishes
  the summary.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.deployments import run_deployment
from prefect.runtime import flow_run

from flows.pipeline import plan_of, run_title, shard_of, shard_suffix, stylize_manifest, write_labels
from flows.runs import local_run
from flows.server import HEARTBEAT_S
from flows.store import OutputStore

DEFAULT_POOL = "stylepipe-gpu"
DEPLOYMENT_NAME = "stylepipe"
DEPLOYMENT = f"stylize-manifest/{DEPLOYMENT_NAME}"
ZOMBIE_AUTOMATION = "stylepipe: crash flow runs whose heartbeats stopped or never began"
TERMINAL_BAD = {StateType.CRASHED, StateType.FAILED, StateType.CANCELLED}


# ---- deployment ----------------------------------------------------------------------------------------


def ensure_pool(name: str = DEFAULT_POOL) -> bool:
    """Create the process work pool if it does not exist; returns whether it was created."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
            return False
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=name, type="process"))
            return True


def ensure_zombie_automation(missing_heartbeats: int = 2) -> bool:
    """The documented Prefect recipe: a run that stops sending heartbeats for ``missing_heartbeats``
    periods without reaching a final state is set to Crashed. Returns whether it was created.

    The trigger also arms on Pending: a worker that dies while a second run it picked up is still
    starting (no heartbeat yet) would otherwise leave that run Pending forever (seen in the
    killed-worker test when one worker took both shards)."""
    from prefect.automations import Automation
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    try:
        Automation.read(name=ZOMBIE_AUTOMATION)
        return False
    except ValueError:
        pass
    Automation(
        name=ZOMBIE_AUTOMATION,
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat", "prefect.flow-run.Pending"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=HEARTBEAT_S * missing_heartbeats + 10),
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, message="no heartbeat: its worker died")],
    ).create()
    return True


def deploy(pool: str = DEFAULT_POOL) -> str:
    """Pool, automation and the manifest deployment; returns the deployment's id."""
    return _apply(
        DEPLOYMENT_NAME,
        pool,
        description="Run a stylepipe manifest, or one shard of it (stylize run M.yaml --shards N).",
        tags=["stylepipe"],
    )


def deploy_schedule(
    name: str, manifest: Path, cron: str, pool: str = DEFAULT_POOL, timezone: str = "UTC"
) -> str:
    """A deployment ``stylize-manifest/<name>`` that runs ``manifest`` on the pool on a cron schedule
    (a nightly mesh job, say); finished outputs are skipped, so each run does only what is new."""
    from prefect.client.schemas.schedules import CronSchedule

    return _apply(
        name,
        pool,
        parameters={"manifest": str(Path(manifest).resolve())},
        schedule=CronSchedule(cron=cron, timezone=timezone),
        description=f"stylepipe: {Path(manifest).name} on the schedule {cron} ({timezone})",
        tags=["stylepipe", "scheduled"],
    )


def _apply(name: str, pool: str, **kw: Any) -> str:
    """Pool and automation first (both idempotent), then the deployment of the manifest flow."""
    ensure_pool(pool)
    ensure_zombie_automation()
    return str(
        stylize_manifest.to_deployment(
            name=name, work_pool_name=pool, entrypoint_type=_module_entrypoint(), **kw
        ).apply()
    )


def _module_entrypoint():
    # "flows.pipeline:stylize_manifest" rather than a file path: workers import the installed package,
    # so they need no copy of this checkout at the same path.
    from prefect.deployments.runner import EntrypointType

    return EntrypointType.MODULE_PATH


def deployment_status(pool: str = DEFAULT_POOL) -> dict[str, Any]:
    """Whether the deployment exists and how many workers poll its pool (for a clear error before a run)."""
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            dep = client.read_deployment_by_name(DEPLOYMENT)
        except ObjectNotFound:
            return {"deployed": False, "pool": pool, "workers": 0}
        workers = client.read_workers_for_work_pool(dep.work_pool_name or pool)
        online = [w for w in workers if str(getattr(w, "status", "")).upper().endswith("ONLINE")]
        return {"deployed": True, "pool": dep.work_pool_name, "workers": len(online)}


# ---- the parent flow -------------------------------------------------------------------------------------


def sharded_run_name() -> str:
    """``<manifest name or stem> <local start time> in N shards``."""
    params = flow_run.parameters
    return f"{run_title(Path(params['manifest']))} in {params['shards']} shards"


@flow(name="stylize-sharded", flow_run_name=sharded_run_name, log_prints=False)
def stylize_sharded(
    manifest: str,
    shards: int,
    output: str | None = None,
    device: str | None = None,
    max_attempts: int = 3,
    poll_s: float = 2.0,
) -> dict[str, Any]:
    """Run a manifest as ``shards`` shard flow runs on the pool's workers; wait, retry, aggregate."""
    parent = flow_run.get_id() or "local"
    with local_run(parent, manifest):
        return _run_sharded(Path(manifest).resolve(), shards, output, device, max_attempts, poll_s, parent)


def _run_sharded(
    path: Path,
    shards: int,
    output: str | None,
    device: str | None,
    max_attempts: int,
    poll_s: float,
    parent: str,
) -> dict[str, Any]:
    logger = get_run_logger()
    started = time.time()
    # Each shard run is a process of its own on some worker machine that gets only parameters
    # (kept small: they live in the server's database and show in the UI), so it plans the manifest
    # again there; this plan validates before anything is submitted and counts the shards.
    full = plan_of(path, output)
    counts = [0] * shards
    for item in full.items:
        counts[shard_of(item.output.as_posix(), shards)] += 1
    name = run_title(path)

    def submit(shard: int, attempt: int):
        return run_deployment(
            DEPLOYMENT,
            parameters={
                "manifest": str(path),
                "output": output,
                "device": device,
                "shard": shard,
                "shards": shards,
            },
            timeout=0,
            idempotency_key=f"{parent}:shard-{shard}-of-{shards}:attempt-{attempt}",
            flow_run_name=name + shard_suffix(shard, shards) + (f" retry {attempt}" if attempt else ""),
        )

    runs = {i: submit(i, 0).id for i in range(shards)}
    attempts = dict.fromkeys(range(shards), 0)
    final: dict[int, Any] = {}
    logger.info("%d items in %d shards (%s); shard runs submitted", len(full.items), shards, counts)
    with get_client(sync_client=True) as client:
        while len(final) < shards:
            time.sleep(poll_s)
            for i, run_id in runs.items():
                if i in final:
                    continue
                state = client.read_flow_run(run_id).state
                if state is None or not state.is_final():
                    continue
                if state.type == StateType.COMPLETED:
                    final[i] = state
                elif attempts[i] + 1 < max_attempts:
                    attempts[i] += 1
                    logger.warning(
                        "shard %d ended %s (%s); submitting it again", i, state.name, state.message
                    )
                    runs[i] = submit(i, attempts[i]).id
                else:
                    logger.error("shard %d ended %s after %d attempts", i, state.name, attempts[i] + 1)
                    final[i] = state
    store = OutputStore(full.output_root)
    rows = store.consolidate()
    complete = store.completed()
    for job in full.jobs:
        if job.labels:
            write_labels(store, job.spec.name, job.labels, complete)
    shard_rows = []
    for i in range(shards):
        record = _record(store, runs[i])
        shard_rows.append(
            {
                "shard": i,
                "items": counts[i],
                "state": final[i].name,
                "attempts": attempts[i] + 1,
                "done": record.get("done"),
                "skipped": record.get("skipped"),
                "failed": record.get("failed"),
                "seconds": record.get("seconds"),
            }
        )
    planned = {i.output.as_posix() for i in full.items}
    summary = {
        "run_id": parent,
        "output": full.output_root,
        "planned": len(planned),
        "complete": len(planned & complete),
        "failed_shards": sum(1 for r in shard_rows if r["state"] != "Completed"),
        "metrics_rows": rows,
        "seconds": round(time.time() - started, 1),
        "shards": shard_rows,
    }
    store.write_json(f"_runs/{parent}/record.json", {**summary, "manifest": str(path), "kind": "sharded"})
    create_table_artifact(
        shard_rows,
        key="sharded-run-summary",
        description=f"{summary['complete']}/{summary['planned']} outputs complete -> {full.output_root}",
    )
    return summary


def _record(store: OutputStore, run_id: Any) -> dict[str, Any]:
    rel = f"_runs/{run_id}/record.json"
    return json.loads(store.read_bytes(rel)) if store.exists(rel) else {}
