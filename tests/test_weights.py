from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from stylecore.errors import UnknownNameError, WeightsError, WeightsNotImportedError
from stylecore.methods import get_method
from stylecore.models import build_module, import_weights
from stylecore.weights import (
    load_catalog,
    load_strict,
    read_state_dict,
    sha256_file,
    upsert_entry,
    weights_dir,
)
from tests.conftest import synthetic_image
from tests.upstream_layouts import upstream_decoder, upstream_transformer_keys, upstream_vgg


def make_catalog(tmp_path: Path, entries: list[dict]) -> Path:
    root = tmp_path / "weights"
    root.mkdir()
    (root / "catalog.json").write_text(json.dumps({"schema_version": 1, "weights": entries}))
    return root


def project_entry(name: str, filename: str, sha: str, arch: str = "decoder-vgg16") -> dict:
    return {
        "name": name,
        "kind": "method",
        "arch": "adain",
        "encoder": "vgg16-hed",
        "location": "project",
        "files": [{"role": "decoder", "filename": filename, "arch": arch, "sha256": sha}],
        "license": "MIT",
        "source": "test",
        "preprocessing": "rgb01",
    }


def test_shipped_catalog_is_consistent():
    catalog = load_catalog()
    for spec in catalog:
        assert spec.files, spec.name
        if spec.location == "project":
            path = weights_dir() / spec.files[0].filename
            assert path.is_file(), f"{spec.name}: {path} missing"
            for f in spec.files:
                assert sha256_file(weights_dir() / f.filename) == f.sha256, f"{spec.name}/{f.role}"
        if spec.kind == "method":
            assert spec.encoder in catalog.names(kind="encoder")
            get_method(spec.arch)  # names a registered method


def test_unknown_name_lists_known_and_suggests():
    with pytest.raises(UnknownNameError) as exc:
        load_catalog().get("vgg16_hed")
    msg = str(exc.value)
    assert "Did you mean 'vgg16-hed'?" in msg and "vgg19-normalised" in msg


def test_checksum_mismatch_is_an_error(tmp_path):
    dec = upstream_decoder()
    root = make_catalog(tmp_path, [project_entry("adain-test", "dec.safetensors", "0" * 64, "decoder-vgg19")])
    save_file({k: v.contiguous() for k, v in dec.state_dict().items()}, str(root / "dec.safetensors"))
    catalog = load_catalog(root)
    (status,) = catalog.status(catalog.get("adain-test"))
    assert status.state == "checksum mismatch"
    with pytest.raises(WeightsError, match="checksum mismatch"):
        get_method("adain").load("adain-test", catalog=catalog, device="cpu")


def test_missing_project_file_is_reported(tmp_path):
    root = make_catalog(tmp_path, [project_entry("adain-test", "absent.safetensors", "0" * 64)])
    catalog = load_catalog(root)
    (status,) = catalog.status(catalog.get("adain-test"))
    assert status.state == "missing"


def test_upstream_decoder_and_sanet_layouts_import_and_run(tmp_path):
    """Random tensors in the exact upstream decoder.pth / transformer_iter_*.pth layouts load by key."""
    torch.manual_seed(0)
    vgg = upstream_vgg()
    torch.save(vgg.state_dict(), tmp_path / "vgg_normalised.pth")
    torch.save(upstream_decoder().state_dict(), tmp_path / "decoder.pth")
    transformer = {k: torch.randn(shape) * 0.01 for k, shape in upstream_transformer_keys().items()}
    torch.save(transformer, tmp_path / "transformer_iter_500000.pth")

    catalog = load_catalog()
    import_weights(catalog, "vgg19-normalised", tmp_path / "vgg_normalised.pth")
    import_weights(catalog, "adain-vgg19-upstream", tmp_path / "decoder.pth")
    import_weights(catalog, "sanet-vgg19-upstream", tmp_path / "transformer_iter_500000.pth", "transformer")
    import_weights(catalog, "sanet-vgg19-upstream", tmp_path / "decoder.pth", "decoder")

    catalog = load_catalog()  # a fresh read sees the recorded imports
    assert catalog.is_installed("adain-vgg19-upstream") and catalog.is_installed("sanet-vgg19-upstream")
    x = synthetic_image(32, 48).unsqueeze(0)
    for method, name in (("adain", "adain-vgg19-upstream"), ("sanet", "sanet-vgg19-upstream")):
        stylizer = get_method(method).load(name, catalog=catalog, device="cpu")
        assert stylizer.encoder.name == "vgg19-normalised"
        out = stylizer.stylize(x, stylizer.encode_style(synthetic_image(32, 32, seed=5)))
        assert out.shape == x.shape
    # the decoder really is the upstream one: same output as the reference Sequential
    adain = get_method("adain").load("adain-vgg19-upstream", catalog=catalog, device="cpu")
    ref = upstream_decoder()
    ref.load_state_dict(torch.load(tmp_path / "decoder.pth", weights_only=True))
    feat = torch.randn(1, 512, 4, 6)
    torch.testing.assert_close(adain.decoder(feat), ref(feat))


def test_wrong_or_missing_keys_fail_with_a_readable_report(tmp_path):
    state = upstream_decoder().state_dict()
    del state["28.bias"]
    state["29.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "decoder.pth")
    with pytest.raises(WeightsError) as exc:
        import_weights(load_catalog(), "adain-vgg19-upstream", tmp_path / "decoder.pth")
    msg = str(exc.value)
    assert "missing keys (1): 28.bias" in msg and "unexpected keys (1): 29.weight" in msg
    assert not load_catalog().is_installed("adain-vgg19-upstream")  # nothing recorded


def test_wrong_shapes_are_reported(tmp_path):
    from stylecore.nets.decoder import VGGDecoder

    with pytest.raises(WeightsError, match=r"wrong shapes \(1\): 1.weight"):
        load_strict(
            VGGDecoder("vgg19"),
            {**VGGDecoder("vgg19").state_dict(), "1.weight": torch.zeros(2, 2, 3, 3)},
            source="test",
        )


def test_a_vgg19_file_is_not_a_decoder(tmp_path):
    torch.save(upstream_vgg().state_dict(), tmp_path / "vgg.pth")
    with pytest.raises(WeightsError, match="weights do not match VGGDecoder"):
        import_weights(load_catalog(), "adain-vgg19-upstream", tmp_path / "vgg.pth")


def test_decoder_upsamplings_share_their_keys_but_not_their_output():
    from stylecore.nets.decoder import VGGDecoder

    nearest, bilinear = build_module("decoder-vgg16"), build_module("decoder-vgg16-bilinear")
    assert (nearest.upsample, bilinear.upsample) == ("nearest", "bilinear")
    load_strict(bilinear, nearest.state_dict(), source="test")  # same tensors, either arch
    features = torch.rand(1, 512, 4, 4)
    with torch.no_grad():
        a, b = nearest(features), bilinear(features)
    assert a.shape == b.shape == (1, 3, 32, 32) and not torch.allclose(a, b)
    with pytest.raises(UnknownNameError, match="bicubic"):
        VGGDecoder("vgg16", "bicubic")


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (shutil.rmtree, (str(tmp_path / "nothing"),))

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"w": Evil()}))
    with pytest.raises(WeightsError, match="not a readable weights file"):
        read_state_dict(path)


def test_import_requires_role_for_multi_file_entries(tmp_path):
    torch.save(upstream_decoder().state_dict(), tmp_path / "decoder.pth")
    with pytest.raises(WeightsError, match="role=ROLE") as exc:
        import_weights(load_catalog(), "sanet-vgg19-upstream", tmp_path / "decoder.pth")
    assert exc.value.settings == {"role": "role"}  # the CLI writes it as --role


def test_not_imported_entry_says_how_to_import():
    catalog = load_catalog()
    with pytest.raises(
        WeightsNotImportedError, match=r"import_weights\(catalog, 'adain-vgg19-upstream', PATH\)"
    ) as exc:
        get_method("adain").load("adain-vgg19-upstream", catalog=catalog, device="cpu")
    assert (exc.value.name, exc.value.role) == ("adain-vgg19-upstream", None)


def test_missing_default_weights_message():
    with pytest.raises(WeightsError, match="no trained weights are installed for sanet"):
        get_method("sanet").load(device="cpu", catalog=load_catalog(Path(__file__).parent / "data" / "empty"))


def test_upsert_replaces_an_entry_where_it_stands(tmp_path):
    entries = [project_entry(n, f"{n}.safetensors", "0" * 64) for n in ("a-test", "b-test", "c-test")]
    root = make_catalog(tmp_path, entries)
    upsert_entry(project_entry("b-test", "b2.safetensors", "1" * 64), root)
    upsert_entry(project_entry("d-test", "d.safetensors", "2" * 64), root)
    raw = json.loads((root / "catalog.json").read_text())["weights"]
    assert [e["name"] for e in raw] == ["a-test", "b-test", "c-test", "d-test"]
    assert raw[1]["files"][0]["filename"] == "b2.safetensors"
