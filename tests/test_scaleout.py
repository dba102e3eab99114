"""Scale-out on a real local Prefect server: deployment, two process workers, a sharded manifest, and a
worker killed with SIGKILL (with its run) mid-shard; the run ends complete and duplicate-free."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from flows.manifest import load_manifest, plan
from flows.pipeline import shard_of
from flows.scaleout import HEARTBEAT_S
from flows.store import OutputStore
from stylecore.imageio import write_image
from tests.conftest import needs_hed, synthetic_image
from tests.manifest_files import write_gatys_manifest
from tests.prefect_server import STYLIZE, stylize

pytestmark = [pytest.mark.slow, needs_hed]


def sharded_manifest(root: Path, contents: int = 16, steps: int = 40) -> Path:
    for i in range(contents):
        write_image(synthetic_image(48, 48, seed=i), root / "photos" / f"p{i:02d}.png")
    write_image(synthetic_image(48, 48, seed=99).flip(0), root / "style.png")
    return write_gatys_manifest(root, contents="photos/*.png", styles="style.png", steps=steps, chunk=2)


def descendants(pid: int) -> list[int]:
    """pid's child processes, recursively (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def start_worker(server, name: str, log: Path) -> subprocess.Popen:
    env = {**server["env"], "PREFECT_WORKER_QUERY_SECONDS": "2"}
    cmd = [
        STYLIZE,
        "worker",
        "--port",
        str(server["port"]),
        "--device",
        "cpu",
        "--threads",
        "1",
        "--name",
        name,
    ]
    return subprocess.Popen(
        cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )


def stop_workers(workers: list[subprocess.Popen], grace_s: float = 30) -> None:
    """SIGTERM every worker's process group, then SIGKILL the ones still alive after ``grace_s``: a
    worker slow to shut down on a loaded machine must not stay behind polling the pool for later
    tests."""
    alive = [w for w in workers if w.poll() is None]
    for w in alive:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(w.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for w in alive:
        try:
            w.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(w.pid, signal.SIGKILL)
            w.wait(timeout=30)


def api(server, method: str, path: str, **kw):
    r = httpx.request(method, f"{server['api']}{path}", timeout=10, **kw)
    r.raise_for_status()
    return r.json()


def test_deploy_creates_pool_deployment_and_automation(server):
    res = stylize(server, "deploy")
    assert res.returncode == 0, res.stdout + res.stderr
    assert api(server, "GET", "/work_pools/stylepipe-gpu")["type"] == "process"
    dep = api(server, "GET", "/deployments/name/stylize-manifest/stylepipe")
    assert dep["work_pool_name"] == "stylepipe-gpu" and dep["entrypoint"] == "flows.pipeline.stylize_manifest"
    automations = api(server, "POST", "/automations/filter", json={})
    assert any(a["name"].startswith("stylepipe: crash flow runs") for a in automations)
    again = stylize(server, "deploy")  # idempotent
    assert again.returncode == 0, again.stdout + again.stderr


def test_sharded_run_without_workers_is_refused(server, tmp_path):
    assert stylize(server, "deploy").returncode == 0
    path = sharded_manifest(tmp_path, contents=2, steps=1)
    res = stylize(server, "run", path, "--shards", "2")
    assert res.returncode == 1 and "no worker is polling the pool" in res.stderr


def test_sharded_run_survives_a_worker_killed_mid_shard(server, tmp_path):
    assert stylize(server, "deploy").returncode == 0
    path = sharded_manifest(tmp_path)
    planned = sorted(i.output.as_posix() for i in plan(load_manifest(path), path).items)
    assert {shard_of(o, 2) for o in planned} == {0, 1}
    workers = [start_worker(server, f"w{i}", tmp_path / f"w{i}.log") for i in range(2)]
    victim_pids: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # both workers online before submitting
            online = api(server, "POST", "/work_pools/stylepipe-gpu/workers/filter", json={})
            if sum(w["status"] == "ONLINE" for w in online) == 2:
                break
            time.sleep(1)
        run = subprocess.Popen(
            [STYLIZE, "run", str(path), "--shards", "2", "--port", str(server["port"])],
            env=server["env"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        # Kill the first worker that is running a shard, once that shard has written something:
        # the worker and its run process die together, as when a machine goes away.
        out = tmp_path / "out" / "art"
        deadline = time.monotonic() + 240
        victim = None
        while victim is None and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.5)
            if len(list(out.glob("*.png"))) < 2:
                continue
            victim = next((w for w in workers if descendants(w.pid)), None)
        assert victim is not None, "no worker was running a shard"
        victim_pids = [victim.pid, *descendants(victim.pid)]
        for pid in victim_pids:
            os.kill(pid, signal.SIGKILL)
        made_at_kill = len(list(out.glob("*.png")))
        stdout, _ = run.communicate(timeout=420)
        assert run.returncode == 0, stdout
        assert made_at_kill < len(planned), "the kill came after all the work was done"
    finally:
        stop_workers(workers)
    assert "after 2 attempt(s)" in stdout  # the dead shard was submitted again
    names = [r["name"] for r in api(server, "POST", "/flow_runs/filter", json={"limit": 50})]
    stamp = r"m \d{4}-\d\d-\d\d \d\d:\d\d"  # the manifest's stem and the start time
    assert any(re.fullmatch(f"{stamp} in 2 shards", n) for n in names), names
    shards = [re.fullmatch(f"{stamp} shard ([01]) of 2( retry 1)?", n) for n in names]
    assert {(m[1], bool(m[2])) for m in shards if m} >= {("0", False), ("1", False)}, names
    assert any(m and m[2] for m in shards), names  # the resubmitted shard says so
    made = sorted(p.relative_to(tmp_path / "out").as_posix() for p in out.glob("*.png"))
    assert made == planned
    assert not OutputStore(str(tmp_path / "out")).temp_files()
    rows = pq.read_table(tmp_path / "out" / "metrics.parquet").to_pylist()
    assert sorted(r["output"] for r in rows) == planned and all(r["error"] is None for r in rows)
    parts = OutputStore(str(tmp_path / "out")).read_parts().to_pylist()
    ok = Counter(r["output"] for r in parts if r["error"] is None)
    assert set(ok) == set(planned) and max(ok.values()) == 1  # no item was done twice


def test_run_left_pending_without_a_heartbeat_is_crashed(server):
    """A worker that dies while its run is still starting leaves it Pending with no heartbeat ever;
    the automation must crash it (so `stylize run` resubmits the shard) instead of waiting forever."""
    assert stylize(server, "deploy").returncode == 0
    dep = api(server, "GET", "/deployments/name/stylize-manifest/stylepipe")
    run = api(
        server,
        "POST",
        f"/deployments/{dep['id']}/create_flow_run",
        json={"parameters": {"manifest": "never-run.yaml"}},
    )
    # No worker polls the pool: play the worker that took the run and died before its first heartbeat.
    api(server, "POST", f"/flow_runs/{run['id']}/set_state", json={"state": {"type": "PENDING"}})
    deadline = time.monotonic() + HEARTBEAT_S * 2 + 90
    state = "PENDING"
    while state == "PENDING" and time.monotonic() < deadline:
        time.sleep(3)
        state = api(server, "GET", f"/flow_runs/{run['id']}")["state"]["type"]
    assert state == "CRASHED"


def test_nightly_mesh_deployment_has_its_cron(server, tmp_path):
    res = stylize(server, "deploy", "nightly-meshes", "--cron", "0 2 * * *")
    if "no files match" in res.stderr or "file not found" in res.stderr:
        pytest.skip("the shipped nightly manifest needs ../shared/datasets/meshes")
    assert res.returncode == 0, res.stdout + res.stderr
    dep = api(server, "GET", "/deployments/name/stylize-manifest/nightly-meshes")
    assert dep["work_pool_name"] == "stylepipe-gpu"
    assert dep["parameters"]["manifest"].endswith("manifests/nightly_meshes.yaml")
    (schedule,) = dep["schedules"]
    assert schedule["schedule"]["cron"] == "0 2 * * *" and schedule["active"]
    bad = stylize(server, "deploy", "nightly-meshes", "--cron", "not a cron")
    assert bad.returncode == 2 and "cron" in bad.stderr.lower()
    missing = stylize(server, "deploy", "other", "--cron", "0 2 * * *")
    assert missing.returncode == 2 and "needs --cron and --manifest" in missing.stderr
