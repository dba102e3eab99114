"""The ``stylize`` CLI: exit codes, messages naming the file and the reason, outputs where it says."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from flows.cli import app
from stylecore.imageio import write_image
from tests.conftest import synthetic_image
from tests.upstream_layouts import upstream_decoder, upstream_vgg

runner = CliRunner()


@pytest.fixture()
def images(tmp_path) -> dict[str, Path]:
    write_image(synthetic_image(40, 56, seed=1), tmp_path / "photo.png")
    write_image(synthetic_image(48, 48, seed=2), tmp_path / "painting.jpg")
    write_image(synthetic_image(48, 48, seed=3), tmp_path / "painting2.png")
    return {
        "content": tmp_path / "photo.png",
        "style": tmp_path / "painting.jpg",
        "style2": tmp_path / "painting2.png",
    }


def bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """One file of each broken kind -> (path, words the message must contain)."""
    good = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(good, "JPEG")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "truncated.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    (tmp_path / "text.jpg").write_text("this is not an image\n")
    Image.new("RGB", (8, 8)).save(tmp_path / "anim.gif")
    return {
        "empty": (tmp_path / "empty.jpg", "empty file"),
        "truncated": (tmp_path / "truncated.jpg", "truncated"),
        "not an image": (tmp_path / "text.jpg", "not a recognised image"),
        "missing": (tmp_path / "missing.png", "file not found"),
        "gif": (tmp_path / "anim.gif", "unsupported image format"),
    }


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_gatys_end_to_end(images, tmp_path):
    out = tmp_path / "out"
    res = run(
        "image",
        "--method",
        "gatys",
        "-c",
        images["content"],
        "-s",
        images["style"],
        "--out",
        out,
        "--size",
        48,
        "-p",
        "steps=2",
        "--device",
        "cpu",
    )
    assert res.exit_code == 0, res.output
    made = out / "photo__painting__gatys.jpg"
    assert made.is_file() and str(made) in res.output.replace("\n", "")
    with Image.open(made) as im:
        assert im.size == (48, 34)


@pytest.mark.parametrize("kind", ["empty", "truncated", "not an image", "missing", "gif"])
@pytest.mark.parametrize("role", ["content", "style"])
def test_bad_inputs_are_reported_before_work(kind, role, images, tmp_path):
    path, words = bad_files(tmp_path)[kind]
    c = path if role == "content" else images["content"]
    s = path if role == "style" else images["style"]
    res = run("image", "--method", "gatys", "-c", c, "-s", s, "--out", tmp_path / "o", "-p", "steps=1")
    assert res.exit_code == 1, res.output
    assert str(path) in res.output and words in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "o").exists()  # nothing started


def test_every_problem_is_listed_at_once(images, tmp_path):
    bad = bad_files(tmp_path)
    res = run(
        "image",
        "-m",
        "gatys",
        "-c",
        bad["empty"][0],
        "-c",
        bad["missing"][0],
        "-s",
        bad["not an image"][0],
        "--out",
        tmp_path / "o",
    )
    assert res.exit_code == 1
    for key in ("empty", "missing", "not an image"):
        assert str(bad[key][0]) in res.output


def test_method_without_trained_weights_says_so(images, tmp_path):
    res = run(
        "image",
        "-m",
        "adain",
        "-c",
        images["content"],
        "-s",
        images["style"],
        "--out",
        tmp_path / "o",
        "--weights",
        "adain-vgg19-upstream",
    )
    assert res.exit_code == 1
    assert "not installed" in res.output and "stylize weights import adain-vgg19-upstream" in res.output


def test_library_errors_name_the_cli_options(images, tmp_path, monkeypatch):
    """The library speaks of its settings (weights=NAME, role=ROLE); the CLI names its options."""
    monkeypatch.setenv("STYLEPIPE_WEIGHTS", str(Path(__file__).parent / "data" / "empty"))
    res = run("image", "-m", "sanet", "-c", images["content"], "-s", images["style"], "--out", tmp_path / "o")
    assert res.exit_code == 1 and "no trained weights are installed for sanet" in res.output
    assert "--weights=NAME, or --method=gatys" in res.output and "weights=NAME, or method" not in res.output
    monkeypatch.delenv("STYLEPIPE_WEIGHTS")
    torch.save(upstream_decoder().state_dict(), tmp_path / "decoder.pth")
    res = run("weights", "import", "sanet-vgg19-upstream", tmp_path / "decoder.pth")
    assert res.exit_code == 1 and "with --role=ROLE (transformer, decoder)" in res.output
    res = run("image", "-c", images["content"], "-s", images["style"], "--mask", images["style2"])
    assert res.exit_code == 1 and "--mask places exactly two styles, got 1" in res.output


def test_unknown_method_suggests(images, tmp_path):
    res = run(
        "image", "-m", "sanett", "-c", images["content"], "-s", images["style"], "--out", tmp_path / "o"
    )
    assert res.exit_code == 1 and "Did you mean 'sanet'" in res.output


def test_bad_parameter_value(images, tmp_path):
    res = run(
        "image",
        "-m",
        "gatys",
        "-c",
        images["content"],
        "-s",
        images["style"],
        "--out",
        tmp_path / "o",
        "--alpha",
        "2",
    )
    assert res.exit_code == 1 and "alpha" in res.output


def test_mix_and_mask_options(images, tmp_path):
    res = run(
        "image",
        "-m",
        "gatys",
        "-c",
        images["content"],
        "-s",
        images["style"],
        "-s",
        images["style2"],
        "--mix",
        "1",
        "--out",
        tmp_path / "o",
    )
    assert res.exit_code == 1 and "--mix has 1 weight(s) for 2 style(s)" in res.output
    res = run(
        "image",
        "-m",
        "gatys",
        "-c",
        images["content"],
        "-s",
        images["style"],
        "-s",
        images["style2"],
        "--mix",
        "1",
        "--mix",
        "3",
        "--size",
        40,
        "-p",
        "steps=1",
        "--out",
        tmp_path / "o",
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o" / "photo__mix-painting+painting2__gatys.jpg").is_file()


def test_weights_list_verify_import(tmp_path):
    res = run("weights", "list")
    assert res.exit_code == 0
    from stylecore.weights import load_catalog

    # every name in full, even in a narrow terminal: they are what users type
    assert all(spec.name in res.output for spec in load_catalog())
    torch.manual_seed(0)
    torch.save(upstream_vgg().state_dict(), tmp_path / "vgg_normalised.pth")
    res = run("weights", "import", "vgg19-normalised", tmp_path / "vgg_normalised.pth")
    assert res.exit_code == 0, res.output
    res = run("weights", "verify", "vgg19-normalised")
    assert res.exit_code == 0 and "ok" in res.output
    # a wrong file is refused with the key report, and nothing is recorded
    torch.save(upstream_decoder().state_dict(), tmp_path / "decoder.pth")
    res = run("weights", "import", "vgg19-normalised", tmp_path / "decoder.pth")
    assert res.exit_code == 1 and "missing keys" in res.output
    res = run("weights", "verify", "vgg16-hedd")
    assert res.exit_code == 1 and "Did you mean 'vgg16-hed'" in res.output


def test_tampered_import_fails_verify(tmp_path):
    torch.save(upstream_vgg().state_dict(), tmp_path / "vgg_normalised.pth")
    assert run("weights", "import", "vgg19-normalised", tmp_path / "vgg_normalised.pth").exit_code == 0
    from stylecore.weights import load_catalog

    catalog = load_catalog()
    path = catalog.path(catalog.get("vgg19-normalised"), "encoder")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    path.write_bytes(bytes(data))
    res = run("weights", "verify")
    assert res.exit_code == 1 and "checksum mismatch" in res.output


def test_methods_command():
    res = run("methods")
    assert res.exit_code == 0 and "gatys" in res.output and "needs none" in res.output


def test_the_makefile_demo_command_parses():
    """`make demo` calls the CLI with options that exist (a renamed option would break the README)."""
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    (line,) = [ln.strip() for ln in makefile.splitlines() if "stylize demo" in ln]
    args = line.split("stylize", 1)[1].split()
    res = run(*args, "--help")
    assert res.exit_code == 0, res.output
