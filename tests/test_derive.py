"""Deriving weights from catalog entries: blends, scaled parameters, the record they leave, the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from flows.cli import app
from stylecore.errors import ParameterError, UnknownNameError, WeightsError
from stylecore.methods.registry import get_method
from stylecore.nets.decoder import VGGDecoder
from stylecore.nets.transformer import Transform
from stylecore.train.derive import Scale, derive_weights
from stylecore.weights import load_catalog, sha256_file
from tests.conftest import synthetic_image

CARD = """# {name}

SANet transformer and decoder for the `vgg16-hed` encoder, trained with stylepipe (`stylize train`).

| | |
| --- | --- |
{rows}
| steps | 3 |

## Intended use

Load it by name: `get_method("sanet").load("{name}")`, or
`weights: {name}` in a manifest job.

## Measured

| metric | value |
| --- | --- |
| f_s ratio | 0.5 |
"""


def write_entry(root, name: str, seed: int, method: str = "sanet") -> dict[str, dict[str, torch.Tensor]]:
    """A SANet-shaped entry of random fp16 weights, as `stylize weights export` writes one."""
    torch.manual_seed(seed)
    nets = {"decoder": VGGDecoder("vgg16", "bilinear"), "transformer": Transform()}
    arch = {"decoder": "decoder-vgg16-bilinear", "transformer": "sanet-transformer"}
    files, states = [], {}
    for role, net in nets.items():
        states[role] = {k: v.half().contiguous() for k, v in net.state_dict().items()}
        path = root / f"{name}.{role}.safetensors"
        save_file(states[role], str(path))
        files.append({"role": role, "filename": path.name, "arch": arch[role], "sha256": sha256_file(path)})
    rows = "\n".join(
        f"| file ({f['role']}) | `{f['filename']}` (fp16, arch `{f['arch']}`, sha256 `{f['sha256']}`) |"
        for f in files
    )
    (root / f"{name}.md").write_text(CARD.format(name=name, rows=rows))
    entry = {
        "name": name, "kind": "method", "arch": method, "encoder": "vgg16-hed", "location": "project",
        "files": files, "license": "MIT", "source": "trained by stylepipe", "preprocessing": "RGB in [0,1]",
        "description": f"{method} decoder + transformer for vgg16-hed, fp16", "card": f"{name}.md",
        "meta": {"steps": 3, "metrics": {"f_s ratio": 0.5}, "blend": {"from": "older", "share": 2.0}},
    }  # fmt: skip
    path = root / "catalog.json"
    raw = json.loads(path.read_text()) if path.exists() else {"schema_version": 1, "weights": []}
    raw["weights"].append(entry)
    path.write_text(json.dumps(raw))
    return states


@pytest.fixture()
def root(tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    return folder


def test_blend_then_scale_is_recorded_and_loads(root, monkeypatch, random_encoder, one_thread):
    a, b = write_entry(root, "a", 1), write_entry(root, "b", 2)
    entry = derive_weights(
        "a", "c", toward="b", share=1.4, scales=[Scale.parse("transformer:sanet5_1.out_conv=0.5")], root=root
    )
    tr = load_file(str(root / "c.transformer.safetensors"))
    for key in ("sanet4_1.f.weight", "sanet5_1.out_conv.weight", "sanet5_1.out_conv.bias", "merge_conv.bias"):
        want = 1.4 * a["transformer"][key].float() - 0.4 * b["transformer"][key].float()
        if key.startswith("sanet5_1.out_conv"):
            want = want * 0.5
        torch.testing.assert_close(tr[key].float(), want, atol=2e-3, rtol=1e-2, msg=key)
    assert tr["sanet4_1.f.weight"].dtype == torch.float16
    dec = load_file(str(root / "c.decoder.safetensors"))
    key = next(iter(dec))
    torch.testing.assert_close(
        dec[key].float(),
        1.4 * a["decoder"][key].float() - 0.4 * b["decoder"][key].float(),
        atol=2e-3,
        rtol=1e-2,
    )
    # the record: earlier steps kept, this one's two appended; a's figures do not describe c
    assert entry["meta"]["blend"] == [
        {"from": "older", "share": 2.0},
        {"from": "b", "share": 1.4},
        {"scale": "transformer:sanet5_1.out_conv", "factor": 0.5},
    ]
    assert "metrics" not in entry["meta"] and entry["card"] == "c.md"
    card = (root / "c.md").read_text()
    assert card.startswith("# c\n") and 'load("c")' in card and "weights: c`" in card
    for f in entry["files"]:
        assert f"sha256 `{f['sha256']}`" in card and f["sha256"] == sha256_file(root / f["filename"])
    assert "1.4 x `a` - 0.4 x `b`" in card and "`sanet5_1.out_conv` parameters multiplied by 0.5" in card
    assert "--toward b --share 1.4 --scale transformer:sanet5_1.out_conv=0.5" in card
    assert "| f_s ratio | 0.5 |" not in card and "none measured" in card
    # a stays as it was; c loads through the catalog's checksums and runs
    assert load_catalog(root).is_installed("a") and load_catalog(root).is_installed("c")
    monkeypatch.setattr("stylecore.methods.base.load_encoder", lambda *aa, **k: random_encoder)
    stylizer = get_method("sanet").load("c", catalog=load_catalog(root), device="cpu")
    torch.testing.assert_close(
        stylizer.transformer.state_dict()["sanet5_1.out_conv.weight"], tr["sanet5_1.out_conv.weight"].float()
    )
    out = stylizer.stylize(synthetic_image(32, 48)[None], stylizer.encode_style(synthetic_image(32, 32)))
    assert out.shape == (1, 3, 32, 48) and torch.isfinite(out).all()


def test_derive_in_place_replaces_files_and_keeps_the_entry_where_it_stands(root):
    a = write_entry(root, "a", 1)
    write_entry(root, "z", 3)
    derive_weights("a", "a", scales=[Scale("decoder", "1", 2.0)], root=root, metrics={"ssim": 0.5})
    names = [e["name"] for e in json.loads((root / "catalog.json").read_text())["weights"]]
    assert names == ["a", "z"]
    catalog = load_catalog(root)
    assert catalog.is_installed("a") and catalog.get("a").meta["metrics"] == {"ssim": 0.5}
    dec = load_file(str(root / "a.decoder.safetensors"))
    layer_keys = [k for k in dec if k.startswith("1.")]
    assert sorted(layer_keys) == ["1.bias", "1.weight"]
    for k in layer_keys:
        torch.testing.assert_close(dec[k].float(), 2.0 * a["decoder"][k].float(), atol=1e-3, rtol=1e-3)
    card = (root / "a.md").read_text()
    assert "| ssim | 0.5 |" in card and card.count("**Derived** from `a` as it was") == 1


def test_bad_requests_say_what_and_which_setting(root):
    write_entry(root, "a", 1)
    write_entry(root, "other", 2, method="rast")
    with pytest.raises(ParameterError, match="nothing to derive") as exc:
        derive_weights("a", "c", root=root)
    assert "toward" in exc.value.settings
    with pytest.raises(ParameterError, match="needs") as exc:
        derive_weights("a", "c", share=0.5, scales=[Scale("decoder", "1", 1.0)], root=root)
    with pytest.raises(ParameterError, match="between 0 and 2"):
        derive_weights("a", "c", toward="a", share=2.5, root=root)
    with pytest.raises(WeightsError, match="one method and encoder"):
        derive_weights("a", "c", toward="other", share=0.5, root=root)
    with pytest.raises(UnknownNameError):
        derive_weights("a", "c", toward="nope", share=0.5, root=root)
    with pytest.raises(ParameterError, match="no parameter of the transformer starts with 'sanet6_1'") as exc:
        derive_weights("a", "c", scales=[Scale("transformer", "sanet6_1", 0.5)], root=root)
    assert "sanet5_1.out_conv" in str(exc.value) and "scale" in exc.value.settings
    with pytest.raises(ParameterError, match="no 'encoder' file"):
        derive_weights("a", "c", scales=[Scale("encoder", "x", 0.5)], root=root)
    for text in ("sanet5_1=0.5", "transformer:sanet5_1=half", "transformer:sanet5_1=inf"):
        with pytest.raises(ParameterError, match="scale"):
            Scale.parse(text)
    # a file that no longer matches its checksum is refused before anything is written
    (root / "a.decoder.safetensors").write_bytes(b"changed")
    with pytest.raises(WeightsError, match="checksum mismatch"):
        derive_weights("a", "c", toward="a", share=0.5, root=root)
    assert not (root / "c.md").exists()


def test_cli_derive_names_the_flag(root):
    write_entry(root, "a", 1)
    write_entry(root, "b", 2)
    runner = CliRunner()
    ok = runner.invoke(
        app, ["weights", "derive", "c", "--from", "a", "--toward", "b", "--share", "0.5", "--root", str(root)]
    )
    assert ok.exit_code == 0, ok.output
    assert "derived c (transformer)" in ok.output and (root / "c.transformer.safetensors").is_file()
    bad = runner.invoke(
        app, ["weights", "derive", "d", "--from", "a", "--scale", "sanet5_1", "--root", str(root)]
    )
    assert bad.exit_code == 1 and "--scale" in bad.output and not (root / "d.md").exists()
    bad = runner.invoke(app, ["weights", "derive", "d", "--from", "a", "--share", "0.5", "--root", str(root)])
    assert bad.exit_code == 1 and "--share" in bad.output and "--toward" in bad.output


def test_a_failed_catalog_write_puts_the_old_files_back(root, monkeypatch):
    write_entry(root, "a", 1)
    before = {p.name: p.read_bytes() for p in root.iterdir()}

    def broken(entry, folder):
        raise OSError("disk full")

    monkeypatch.setattr("stylecore.train.derive.upsert_entry", broken)
    with pytest.raises(OSError, match="disk full"):
        derive_weights("a", "a", scales=[Scale("decoder", "1", 2.0)], root=root)
    with pytest.raises(OSError, match="disk full"):
        derive_weights("a", "b", scales=[Scale("decoder", "1", 2.0)], root=root)
    assert {p.name: p.read_bytes() for p in root.iterdir()} == before  # nothing new, nothing changed
    catalog = load_catalog(root)
    assert all(catalog.verified_path(catalog.get("a"), role).is_file() for role in ("decoder", "transformer"))
