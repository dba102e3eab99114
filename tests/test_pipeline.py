"""End to end on a real Prefect server: manifest -> flow run -> images + metrics.parquet, resume after
SIGKILL, bad items recorded while the rest finishes. Runs ``stylize`` as a subprocess, as users do."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from PIL import Image

from flows.manifest import load_manifest, plan
from stylecore.imageio import write_image
from tests.conftest import needs_hed, synthetic_image
from tests.manifest_files import write_gatys_manifest
from tests.prefect_server import STYLIZE, stylize

pytestmark = [pytest.mark.slow, needs_hed]


def make_tree(root: Path, contents: int, styles: int) -> None:
    for i in range(contents):
        write_image(synthetic_image(36, 48, seed=i), root / "photos" / f"p{i:02d}.jpg")
    for i in range(styles):
        write_image(synthetic_image(40, 40, seed=50 + i).flip(0), root / "styles" / f"s{i}.png")


def manifest(root: Path, steps: int = 1, chunk: int = 100, contents: str = "photos/*.jpg") -> Path:
    return write_gatys_manifest(
        root, contents=contents, styles="styles/*.png", steps=steps, chunk=chunk, device="cpu"
    )


def flow_runs(server) -> list[dict]:
    r = httpx.post(
        f"{server['api']}/flow_runs/filter", json={"sort": "START_TIME_DESC", "limit": 50}, timeout=10
    )
    r.raise_for_status()
    return r.json()


def outputs(root: Path) -> list[str]:
    return sorted(p.relative_to(root / "out").as_posix() for p in (root / "out" / "art").glob("*.png"))


def planned(path: Path) -> list[str]:
    return sorted(i.output.as_posix() for i in plan(load_manifest(path), path).items)


def test_small_manifest_end_to_end(server, tmp_path):
    make_tree(tmp_path, 6, 3)
    path = manifest(tmp_path)
    res = stylize(server, "run", path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert outputs(tmp_path) == planned(path) and len(planned(path)) == 18
    table = pq.read_table(tmp_path / "out" / "metrics.parquet").to_pylist()
    assert sorted(r["output"] for r in table) == planned(path)
    assert all(
        r["error"] is None and r["f_c"] >= 0 and r["f_s"] >= 0 and r["encoder"] == "vgg16-hed" for r in table
    )
    run_id = table[0]["run_id"]
    fr = httpx.get(f"{server['api']}/flow_runs/{run_id}", timeout=10).json()
    assert fr["state"]["type"] == "COMPLETED"
    assert re.fullmatch(r"m \d{4}-\d\d-\d\d \d\d:\d\d", fr["name"]), fr["name"]  # manifest stem + start
    tasks = httpx.post(
        f"{server['api']}/task_runs/filter", json={"flow_runs": {"id": {"any_": [run_id]}}}, timeout=10
    ).json()
    assert [t["state"]["type"] for t in tasks] == ["COMPLETED"]  # 18 items, chunk_size 100: one task
    arts = httpx.post(
        f"{server['api']}/artifacts/filter", json={"flow_runs": {"id": {"any_": [run_id]}}}, timeout=10
    ).json()
    assert {a["type"] for a in arts} >= {"table", "progress"}
    record = tmp_path / "out" / "_runs" / run_id / "record.json"
    assert record.is_file() and (tmp_path / "out" / "_runs" / run_id / "manifest.yaml").is_file()
    # a second run has nothing to do
    res = stylize(server, "run", path)
    assert res.returncode == 0 and "0 done, 18 already complete" in res.stdout.replace("\n", " ")
    res = stylize(server, "status", run_id)
    assert res.returncode == 0 and "COMPLETED" in res.stdout.upper()


def test_sigkill_then_rerun_completes_exactly_once(server, tmp_path):
    make_tree(tmp_path, 8, 2)
    path = manifest(tmp_path, steps=25, chunk=3)
    proc = subprocess.Popen(
        [STYLIZE, "run", path, "--port", str(server["port"])],
        env=server["env"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while len(outputs(tmp_path)) < 5 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed; make it longer"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_with = len(outputs(tmp_path))
    assert 0 < killed_with < 16
    (killed,) = [r for r in flow_runs(server) if r["state"]["type"] == "RUNNING"]  # nobody says otherwise

    res = stylize(server, "run", path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"marked a dead local run Crashed: {killed['id']}" in res.stderr.replace("\n", " ")
    state = httpx.get(f"{server['api']}/flow_runs/{killed['id']}", timeout=10).json()["state"]
    assert state["type"] == "CRASHED" and f"pid {proc.pid}" in state["message"]
    assert outputs(tmp_path) == planned(path)
    assert not list((tmp_path / "out").rglob("*.tmp")), "half-written files left behind"
    rows = pq.read_table(tmp_path / "out" / "metrics.parquet").to_pylist()
    assert sorted(r["output"] for r in rows) == planned(path)  # complete, no duplicates
    assert all(r["error"] is None for r in rows)
    for name in outputs(tmp_path):  # every image decodes fully
        with Image.open(tmp_path / "out" / name) as im:
            im.load()


def test_status_crashes_runs_whose_local_process_is_gone(server, tmp_path):
    def post(path: str, body: dict) -> dict:
        r = httpx.post(f"{server['api']}{path}", json=body, timeout=10)
        r.raise_for_status()
        return r.json()

    flow = post("/flows/", {"name": "stylize-manifest"})
    dead = subprocess.Popen(["true"])
    dead.wait()
    runs = {}
    for who, pid in (("dead", dead.pid), ("alive", os.getpid())):
        fr = post(
            "/flow_runs/",
            {"flow_id": flow["id"], "name": who, "state": {"type": "RUNNING"},
             "parameters": {"manifest": "x.yaml"}},
        )  # fmt: skip
        task = post(
            "/task_runs/",
            {"flow_run_id": fr["id"], "task_key": "k", "dynamic_key": who, "name": who,
             "state": {"type": "RUNNING"}},
        )  # fmt: skip
        record = {"run_id": fr["id"], "pid": pid, "host": socket.gethostname(), "api": server["api"]}
        (server["state"] / "local-runs").mkdir(exist_ok=True)
        (server["state"] / "local-runs" / f"{fr['id']}.json").write_text(json.dumps(record))
        runs[who] = (fr["id"], task["id"])
    res = stylize(server, "status")
    assert res.returncode == 0, res.stdout + res.stderr
    for who, want in (("dead", "CRASHED"), ("alive", "RUNNING")):
        fr_id, task_id = runs[who]
        assert httpx.get(f"{server['api']}/flow_runs/{fr_id}", timeout=10).json()["state"]["type"] == want
        assert httpx.get(f"{server['api']}/task_runs/{task_id}", timeout=10).json()["state"]["type"] == want
    assert f"marked a dead local run Crashed: {runs['dead'][0]}" in res.stderr.replace("\n", " ")
    assert {p.stem for p in (server["state"] / "local-runs").iterdir()} == {runs["alive"][0]}
    (server["state"] / "local-runs" / f"{runs['alive'][0]}.json").unlink()


PLAN_COUNTING_RUN = """
import sys
import flows.manifest, flows.pipeline
calls = []
real = flows.manifest.plan
def counting(*args, **kw):
    calls.append(1)
    return real(*args, **kw)
flows.manifest.plan = flows.pipeline.plan = counting
from flows.cli import app
try:
    app(["run", *sys.argv[1:]])
finally:
    print("plans:", len(calls))
"""


def test_a_run_plans_its_manifest_once(server, tmp_path):
    make_tree(tmp_path, 2, 1)
    path = manifest(tmp_path)
    res = subprocess.run(
        [sys.executable, "-c", PLAN_COUNTING_RUN, str(path), "--port", str(server["port"])],
        env=server["env"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "plans: 1" in res.stdout and outputs(tmp_path) == planned(path)


def test_bad_items_are_recorded_and_the_rest_finishes(server, tmp_path):
    make_tree(tmp_path, 2, 1)
    photos = tmp_path / "photos"
    (photos / "zero.jpg").write_bytes(b"")
    good = (photos / "p00.jpg").read_bytes()
    (photos / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (photos / "text.jpg").write_text("not an image")
    Image.fromarray((np.linspace(0, 65535, 48 * 36).reshape(36, 48)).astype(np.uint16)).save(
        photos / "deep.png"
    )
    Image.new("CMYK", (48, 36), (0, 128, 255, 0)).save(photos / "cmyk.jpg")
    path = manifest(tmp_path, contents="photos/*")
    res = stylize(server, "run", path)
    assert res.returncode == 1
    for name, reason in (
        ("zero.jpg", "empty file"),
        ("truncated.jpg", "truncated"),
        ("text.jpg", "not a recognised image"),
    ):
        assert name in res.stderr and reason in res.stderr, res.stderr
    made = outputs(tmp_path)
    assert len(made) == 4  # p00, p01, the 16-bit PNG and the CMYK JPEG
    assert any(n.startswith("art/deep__") for n in made) and any(n.startswith("art/cmyk__") for n in made)
    rows = pq.read_table(tmp_path / "out" / "metrics.parquet").to_pylist()
    assert sum(r["error"] is not None for r in rows) == 3 and len(rows) == 7


def test_missing_file_is_refused_before_any_work(server, tmp_path):
    make_tree(tmp_path, 1, 1)
    path = manifest(tmp_path, contents="photos/absent.jpg")
    before = len(flow_runs(server))
    res = stylize(server, "run", path)
    assert res.returncode == 1 and "jobs[0].contents[0]: file not found" in res.stderr
    assert len(flow_runs(server)) == before and not (tmp_path / "out").exists()


def test_photoreal_job_keeps_size_and_records_ssim(server, tmp_path):
    write_image(synthetic_image(40, 56, seed=1), tmp_path / "day" / "street.png")
    write_image(synthetic_image(40, 40, seed=2) * 0.3, tmp_path / "night" / "ref.png")
    seg = torch.zeros(3, 40, 56)
    seg[:, :20] = 1.0  # white "sky" on top, black below
    write_image(seg, tmp_path / "seg" / "street.png")
    write_image(seg[:, :, :40], tmp_path / "seg" / "ref.png")
    data = {
        "schema_version": 1,
        "output": "out",
        "device": "cpu",
        "jobs": [
            {
                "kind": "photoreal",
                "name": "night",
                "contents": ["day"],
                "styles": ["night"],
                "preset": "day_to_night",
                "masks": {"content": "seg", "style": "seg"},
                "format": "png",
                "params": {"steps": 5, "work_size": 64},
            }
        ],
    }
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(data))
    res = stylize(server, "run", path)
    assert res.returncode == 0, res.stdout + res.stderr
    (made,) = (tmp_path / "out" / "night").glob("*.png")
    with Image.open(made) as im:
        assert im.size == (56, 40)  # the output keeps the input's size
    (row,) = pq.read_table(tmp_path / "out" / "metrics.parquet").to_pylist()
    assert row["method"] == "photoreal" and 0 < row["ssim"] <= 1 and row["f_s"] > 0 and row["error"] is None


def test_augment_job_mirrors_an_image_folder(server, tmp_path):
    from torchvision.datasets import ImageFolder

    from tests.test_augment import CLASSES, augment_manifest, image_folder, style_pool

    image_folder(tmp_path)
    style_pool(tmp_path)
    path = augment_manifest(tmp_path, method="adain", batch=4)  # the default, adain-vgg16hed-skip
    res = stylize(server, "run", path)
    assert res.returncode == 0, res.stdout + res.stderr
    job = tmp_path / "out" / "aug"
    made = sorted(p.relative_to(job).as_posix() for p in job.rglob("*.png"))
    per_class = {c: max(1, round(0.5 * n)) * 2 for c, n in CLASSES.items()}  # fraction 0.5, per_image 2
    assert len(made) == sum(per_class.values()) == 12
    assert [f"aug/{m}" for m in made] == planned(path) and all(m.split("/")[0] in CLASSES for m in made)
    labels = list(csv.DictReader((job / "labels.csv").open()))
    assert sorted(r["path"] for r in labels) == made
    assert all(r["path"].startswith(r["label"] + "/") and 0.3 <= float(r["alpha"]) <= 0.9 for r in labels)
    folder = ImageFolder(str(job))
    assert folder.classes == sorted(CLASSES) and len(folder) == 12
    assert {folder.classes[t] for _, t in folder.samples} == set(CLASSES)
    rows = pq.read_table(tmp_path / "out" / "metrics.parquet").to_pylist()
    assert len(rows) == 12 and all(r["error"] is None and '"alpha"' in r["params"] for r in rows)
    again = stylize(server, "run", path)  # a re-run finds everything complete
    assert again.returncode == 0 and "12 already complete" in again.stdout


def test_mesh_job_writes_obj_previews_and_loss_rows(server, tmp_path):
    import open3d as o3d

    from stylecore.mesh import load_mesh

    sphere = o3d.geometry.TriangleMesh.create_sphere(radius=1.0, resolution=8)  # no UVs: xatlas unwraps it
    (tmp_path / "meshes").mkdir()
    o3d.io.write_triangle_mesh(str(tmp_path / "meshes" / "ball.obj"), sphere)
    (tmp_path / "meshes" / "empty.obj").write_text("")  # a bad mesh: recorded, the rest goes on
    write_image(synthetic_image(48, 48, seed=7), tmp_path / "style.png")
    params = {"iterations": 2, "texture_size": 64, "render_size": 64, "n_azimuth": 2, "elevations": [10.0],
              "distances": [1.0], "views_per_step": 2, "supersample": 1}  # fmt: skip
    data = {
        "schema_version": 1,
        "output": "out",
        "device": "cpu",
        "jobs": [
            {"kind": "mesh", "name": "m", "meshes": ["meshes"], "styles": ["style.png"], "params": params,
             "turntable_views": 3, "preview_size": 48}
        ],
    }  # fmt: skip
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(data))
    res = stylize(server, "run", path)
    assert res.returncode == 1 and "empty.obj" in res.stderr, res.stdout + res.stderr
    (folder,) = (tmp_path / "out" / "m").glob("ball__style-*")
    assert {p.name for p in folder.iterdir()} == {
        "ball.obj",
        "ball.mtl",
        "ball.png",
        "turntable.png",
        "before_after.png",
    }
    again = load_mesh(folder / "ball.obj")
    assert again.n_triangles == len(sphere.triangles) and not again.unwrapped
    with Image.open(folder / "turntable.png") as im:
        assert im.size == (3 * 48, 48)
    rows = {
        Path(r["output"]).name: r for r in pq.read_table(tmp_path / "out" / "metrics.parquet").to_pylist()
    }
    assert rows["ball.obj"]["error"] is None and rows["ball.obj"]["style_loss"] > 0
    assert rows["empty.obj"]["error"] and "empty.obj" in rows["empty.obj"]["error"]
    rerun = stylize(server, "run", path)  # the good mesh is up to date: skipped
    assert "1 already complete" in rerun.stdout
