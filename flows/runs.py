"""Reading runs back from the Prefect API (for ``stylize status``), and marking dead local runs Crashed.

A run that a worker started is watched by the server (heartbeats, the dead-worker automation); a run
in the process of ``stylize run`` (or any Python caller) is not. Such a run leaves a record under
``<state>/local-runs/`` with its process, host and API; when ``stylize run`` or ``stylize status`` finds
one whose process is gone and whose run is not finished, it sets that run (and its unfinished task
runs) to Crashed. The record is removed when the run ends, however it ends short of ``kill -9``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowFilter, FlowFilterName
from prefect.client.schemas.sorting import FlowRunSort
from prefect.runtime import deployment
from prefect.settings import PREFECT_API_URL

from flows.server import state_dir
from stylecore.fsio import atomic_write_text


def describe_runs(run_id: str | None, limit: int = 10) -> list[str]:
    lines = []
    with get_client(sync_client=True) as client:
        if run_id:
            runs = [client.read_flow_run(uuid.UUID(run_id))]
        else:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["stylize-manifest"])),
                sort=FlowRunSort.START_TIME_DESC,
                limit=limit,
            )
        for fr in runs:
            state = fr.state.name if fr.state else "?"
            lines.append(
                f"{fr.id}  {fr.name}  {state}  started {fr.start_time}  {fr.parameters.get('manifest')}"
            )
            artifacts = client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[fr.id]))
            )
            for art in artifacts:
                if art.type == "table" and art.key == "run-summary":
                    lines.append(f"    summary: {art.description}")
                elif art.type == "progress":
                    lines.append(f"    {art.description}: {art.data:.0f}%")
    return lines


# ---- local runs ----------------------------------------------------------------------------------------


def _records() -> Path:
    return state_dir() / "local-runs"


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_alive(pid: int, started: str | None = None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return started is None or _process_start(pid) in (None, started)


@contextlib.contextmanager
def local_run(run_id: str, manifest: str) -> Iterator[None]:
    """Inside a flow run: keep a record of this process while the run lasts, unless a worker started
    the run (deployment runs are the server's to watch)."""
    if deployment.id is not None:
        yield
        return
    pid = os.getpid()
    record = _records() / f"{run_id}.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "run_id": run_id,
        "pid": pid,
        "process_start": _process_start(pid),
        "host": socket.gethostname(),
        "api": PREFECT_API_URL.value(),
        "manifest": manifest,
        "started": time.time(),
    }
    atomic_write_text(record, json.dumps(data))
    try:
        yield
    finally:
        record.unlink(missing_ok=True)


def crash_dead_local_runs() -> list[str]:
    """Set every unfinished run whose local process is gone to Crashed; returns one line per run.

    Only records of this host and of the API this process talks to are judged; the others stay."""
    folder = _records()
    host, api = socket.gethostname(), PREFECT_API_URL.value()
    dead = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being written right now
        if (
            rec.get("host") == host
            and rec.get("api") == api
            and not process_alive(rec["pid"], rec.get("process_start"))
        ):
            dead.append((path, rec))
    if not dead:
        return []
    from prefect.client.schemas.filters import (
        TaskRunFilter,
        TaskRunFilterFlowRunId,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.client.schemas.objects import TERMINAL_STATES, StateType
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Crashed

    not_final = sorted(set(StateType) - TERMINAL_STATES)
    unfinished = TaskRunFilterState(type=TaskRunFilterStateType(any_=not_final))
    lines = []
    with get_client(sync_client=True) as client:
        for path, rec in dead:
            message = (
                f"its process (pid {rec['pid']} on {host}) ended without finishing the run; "
                "run the manifest again to finish the work (finished outputs are kept)"
            )
            try:
                fr = client.read_flow_run(uuid.UUID(rec["run_id"]))
            except ObjectNotFound:
                path.unlink(missing_ok=True)  # the server forgot it (a new database)
                continue
            if fr.state is not None and not fr.state.is_final():
                tasks = TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[fr.id]), state=unfinished)
                done: set[uuid.UUID] = set()
                # page by page (the API returns at most 200): each page is final once set
                while batch := [t for t in client.read_task_runs(task_run_filter=tasks) if t.id not in done]:
                    for tr in batch:
                        client.set_task_run_state(tr.id, Crashed(message=message), force=True)
                        done.add(tr.id)
                client.set_flow_run_state(fr.id, Crashed(message=message), force=True)
                lines.append(f"{fr.id}  {fr.name}: was {fr.state.name}, now Crashed ({message})")
            path.unlink(missing_ok=True)
    return lines
