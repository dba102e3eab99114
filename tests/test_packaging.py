"""The wheel: it carries the library, the CLI, the shipped weights and the demo, and works from any folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.conftest import needs_hed

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_folder_is_listed():
    """pyproject lists packages by name (two are mapped from the top level): a new folder must be added."""
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for top in ("stylecore", "flows")
        for p in (ROOT / top).rglob("__init__.py")
    }
    mapped = PYPROJECT["tool"]["setuptools"]["package-dir"]
    assert found | set(mapped) == listed
    assert mapped == {"stylecore.shipped_weights": "weights", "flows.examples": "manifests"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the source (no build folder is left in the checkout)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("stylecore", "flows", "weights", "manifests"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    dist = tmp_path_factory.mktemp("dist")
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", dist, src]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    (whl,) = dist.glob("stylepipe-*.whl")
    return whl


@pytest.mark.slow
def test_wheel_carries_code_weights_and_examples(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for top in ("stylecore", "flows"):
        for py in (ROOT / top).rglob("*.py"):
            assert py.relative_to(ROOT).as_posix() in names
    for f in (ROOT / "weights").iterdir():
        if f.suffix in (".json", ".md", ".safetensors"):
            assert f"stylecore/shipped_weights/{f.name}" in names
    for f in (ROOT / "manifests").rglob("*"):
        if f.suffix in (".yaml", ".jpg") or f.name == "README.md":
            assert f"flows/examples/{f.relative_to(ROOT / 'manifests').as_posix()}" in names
    assert "stylecore/data/eval_split.txt" in names
    assert "stylepipe-0.1.0.dist-info/entry_points.txt" in names


CHECK = """
import sys
from pathlib import Path
target = Path(sys.argv[1])
import stylecore, flows
from stylecore.weights import load_catalog, weights_dir
from flows.cli import examples_dir
assert Path(stylecore.__file__).is_relative_to(target), stylecore.__file__
assert weights_dir().is_relative_to(target), weights_dir()
assert examples_dir().is_relative_to(target), examples_dir()
assert load_catalog().is_installed("adain-vgg16hed")

import torch
from stylecore.imageio import read_image, write_image
from stylecore.methods import get_method
adain = get_method("adain").load(device="cpu")
photo = read_image(examples_dir() / "photos" / "chelsea.jpg", max_side=128)
code = adain.encode_style(read_image(examples_dir() / "styles" / "starry_night.jpg", max_side=128))
out = adain.stylize(photo, code)
assert out.shape[-2:] == photo.shape[-2:] and torch.isfinite(out).all()
write_image(out[0], Path(sys.argv[2]) / "cat.png")
"""


@pytest.mark.slow
@needs_hed
def test_installed_wheel_stylizes_outside_the_checkout(wheel, tmp_path):
    """Installed into a bare target and imported from elsewhere: the shipped AdaIN weights load and run,
    and the demo manifest validates with the installed example images."""
    target = tmp_path / "site"
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", target, wheel]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    work = tmp_path / "elsewhere"
    work.mkdir()
    # The installed copy comes first on the path; the checkout is nowhere on it.
    env = {k: v for k, v in os.environ.items() if k not in ("STYLEPIPE_WEIGHTS", "PYTHONPATH")}
    env["PYTHONPATH"] = str(target)
    run = subprocess.run(
        [sys.executable, "-c", CHECK, target, work], cwd=work, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert (work / "cat.png").stat().st_size > 1000

    demo = target / "flows" / "examples" / "demo.yaml"
    validate = subprocess.run(
        [sys.executable, "-c", "from flows.cli import app; app()", "validate", demo],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert "27 item(s)" in validate.stdout
