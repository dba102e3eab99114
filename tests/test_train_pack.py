"""Training elsewhere: pack (data + fp16 trunk), train for a time budget with snapshots, export one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from flows.cli import app
from stylecore.errors import ParameterError, UnknownNameError
from stylecore.imageio import write_image
from stylecore.methods import get_method
from stylecore.train import pack
from stylecore.train.data import eval_split
from stylecore.train.export import read_snapshot
from stylecore.weights import load_catalog
from tests.conftest import synthetic_image


@pytest.fixture()
def packed(tmp_path, random_encoder) -> Path:
    datasets = tmp_path / "datasets"
    for i in range(4):
        write_image(synthetic_image(60, 80, seed=i), datasets / "content" / f"c{i:05d}.jpg")
        write_image(synthetic_image(64, 48, seed=10 + i), datasets / "style" / f"s{i:05d}.png")
    write_image(synthetic_image(60, 80, seed=9), datasets / "content" / "c00013.jpg")  # evaluation split
    out = tmp_path / "pack"
    pack.pack(datasets, out, side=48, quality=90, encoder=random_encoder)
    return out


def test_pack_leaves_out_the_evaluation_split_and_scales_the_short_side(packed):
    contents = sorted(p.name for p in (packed / "content").iterdir())
    assert contents == [f"c{i:05d}.webp" for i in range(4)]  # c00013 is held out
    assert len(list((packed / "style").iterdir())) == 4
    assert json.loads((packed / pack.PACK_FILE).read_text())["content"] == 4
    with Image.open(packed / "content" / "c00000.webp") as img:
        assert min(img.size) == 48 and img.size == (64, 48)


def test_pack_caps_keep_images_evenly_spaced(tmp_path, random_encoder):
    names = [Path(f"s{i:05d}.png") for i in range(10)]
    assert pack.spaced(names, 3) == [names[0], names[3], names[6]]
    assert pack.spaced(names, None) == names and pack.spaced(names, 20) == names
    datasets = tmp_path / "datasets"
    for i in range(6):
        write_image(synthetic_image(40, 40, seed=i), datasets / "content" / f"c{i:05d}.jpg")
        write_image(synthetic_image(40, 40, seed=10 + i), datasets / "style" / f"s{i:05d}.png")
    out = tmp_path / "pack"
    record = pack.pack(datasets, out, side=32, max_content=2, max_style=3, encoder=random_encoder)
    assert sorted(p.name for p in (out / "content").iterdir()) == ["c00000.webp", "c00003.webp"]
    assert sorted(p.name for p in (out / "style").iterdir()) == ["s00000.webp", "s00002.webp", "s00004.webp"]
    assert (record["content"], record["style"]) == (2, 3)


def test_packed_encoder_matches_the_full_one_up_to_relu5_1(packed, random_encoder):
    encoder = pack.packed_encoder(packed / pack.ENCODER_FILE)
    assert encoder.layer_names[-1] == "relu5_1" and not hasattr(encoder, "conv5_2")  # no loss reads on
    with pytest.raises(UnknownNameError, match="relu5_2"):
        encoder(synthetic_image(32, 32)[None], ("relu5_2",))
    x = synthetic_image(64, 64)[None]
    layers = ("relu1_1", "relu3_1", "relu5_1")
    full, packed_out = random_encoder(x, layers), encoder(x, layers)
    for layer in layers:
        rel = (full[layer] - packed_out[layer]).norm() / full[layer].norm()
        assert rel < 2e-3, layer  # fp16 rounding of the weights only


def test_train_snapshot_exports_to_a_loadable_catalog_entry(packed, tmp_path, random_encoder, monkeypatch):
    snaps = tmp_path / "snaps"
    result = CliRunner().invoke(
        app,
        ["train", "adain", "--packed", str(packed), "--snapshots", str(snaps), "--minutes", "2",
         "--out", str(tmp_path / "run" / "adain.ckpt"), "--steps", "2", "--size", "32", "--batch", "2",
         "--device", "cpu", "--set", "log_every=1", "--set", "ema_decay=0.5"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in snaps.iterdir()) == ["adain.csv", "adain.safetensors"]
    snapshot = read_snapshot(snaps / "adain.safetensors")
    assert snapshot["step"] == 2 and snapshot["config"]["size"] == 32 and snapshot["hardware"] == "cpu"
    assert snapshot["decoder"][next(iter(snapshot["decoder"]))].dtype == torch.float16

    root = tmp_path / "weights"
    root.mkdir()
    (root / "catalog.json").write_text(
        (Path(__file__).parent / "data" / "empty" / "catalog.json").read_text()
    )
    result = CliRunner().invoke(
        app,
        ["weights", "export", str(snaps / "adain.safetensors"), "--name", "adain-vgg16hed",
         "--root", str(root)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    card = (root / "adain-vgg16hed.md").read_text()
    assert "2 steps" in card and "32 px random crops" in card
    assert "| data | 4 contents and 4 styles of " in card  # the pack's source, not its own path
    assert "running average of the training weights, decay 0.5" in card  # the snapshot ships it
    monkeypatch.setattr("stylecore.methods.base.load_encoder", lambda *a, **k: random_encoder)
    stylizer = get_method("adain").load("adain-vgg16hed", catalog=load_catalog(root), device="cpu")
    for k, v in snapshot["decoder"].items():
        torch.testing.assert_close(stylizer.decoder.state_dict()[k], v.float(), msg=k)


def test_packed_training_on_the_shipped_imagenet_trunk(packed, tmp_path):
    out = tmp_path / "run" / "adain.ckpt"
    result = CliRunner().invoke(
        app,
        ["train", "adain", "--packed", str(packed), "--out", str(out), "--steps", "1", "--size", "32",
         "--batch", "2", "--device", "cpu", "--set", "encoder=vgg16-imagenet", "--set", "decoder=skip",
         "--set", "skips=1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    state = torch.load(out, weights_only=True)
    assert state["step"] == 1 and state["config"]["encoder"] == "vgg16-imagenet"
    assert {k.split(".")[1] for k in state["decoder"] if k.startswith("skip.")} == {"0"}


def test_the_evaluation_split_is_package_data(tmp_path):
    names = eval_split()
    assert len(names) == 16 and "content/c00013.jpg" in names
    assert all(n.startswith(("content/", "style/")) for n in names)
    assert pack.packed_names(["content/c00013.jpg"]) == ["c00013.webp"]
    own = tmp_path / "split.txt"
    own.write_text("# held out\ncontent/a.jpg\n\n  style/b.png\n")
    assert eval_split(own) == ["content/a.jpg", "style/b.png"]
    with pytest.raises(ParameterError, match="cannot read the list of held-out images"):
        eval_split(tmp_path / "none.txt")
