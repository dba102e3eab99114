"""SANet's attention with AdaIN-normalised output (NormalisedTransform): statistics, masks, training."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from stylecore.errors import ParameterError
from stylecore.methods import get_method
from stylecore.methods.sanet import SANet
from stylecore.models import build_module
from stylecore.nets.decoder import SkipDecoder
from stylecore.nets.transformer import NormalisedTransform, Transform
from stylecore.ops import masked_mean_std, mean_std
from stylecore.train.export import export_checkpoint
from stylecore.train.loop import TrainConfig, Trainer
from stylecore.weights import load_catalog
from tests.conftest import image_folders, synthetic_image
from tests.upstream_layouts import upstream_transformer_keys


def test_normalised_transform_has_the_papers_attention_keys_and_the_styles_statistics():
    torch.manual_seed(0)
    norm = NormalisedTransform(8)
    assert set(norm.state_dict()) | {"merge_conv.weight", "merge_conv.bias"} == set(Transform(8).state_dict())
    assert set(build_module("sanet-transformer-norm").state_dict()) == {
        k for k in upstream_transformer_keys() if not k.startswith("merge_conv.")
    }
    c4, s4 = torch.randn(2, 8, 6, 10), torch.randn(2, 8, 5, 7) * 3 + 1
    c5, s5 = torch.randn(2, 8, 3, 5), torch.randn(2, 8, 3, 4)
    out = norm(c4, s4, c5, s5)
    for got, want in zip(mean_std(out), mean_std(s4), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    # the relu5_1 attention is part of it: its output changes the result, not its statistics
    with torch.no_grad():
        norm.sanet5_1.out_conv.weight.mul_(3.0)
    assert not torch.allclose(norm(c4, s4, c5, s5), out, atol=1e-3)


@pytest.fixture()
def norm_sanet(random_encoder) -> SANet:
    torch.manual_seed(1)
    return SANet(random_encoder, NormalisedTransform(), SkipDecoder.random())


def test_sanet_with_the_normalised_transformer_gives_each_region_its_styles_statistics(norm_sanet):
    a = norm_sanet.encode_style(synthetic_image(48, 48, seed=2))
    b = norm_sanet.encode_style(synthetic_image(48, 64, seed=3).flip(0))
    content = synthetic_image(64, 96, seed=1)[None]
    out = norm_sanet.stylize(content, a)
    assert out.shape == (1, 3, 64, 96) and torch.isfinite(out).all()
    cfeats = norm_sanet._content_features(content)
    levels = norm_sanet._transfer_levels(cfeats, a, dict.fromkeys(norm_sanet.levels))
    for got, want in zip(mean_std(levels["relu4_1"]), (a.tensors["mean"], a.tensors["std"]), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=5e-3)
    left = torch.zeros(1, 1, *cfeats["relu4_1"].shape[-2:])
    left[..., : left.shape[-1] // 2] = 1.0
    for code, mask in ((a, left), (b, 1 - left)):
        t = norm_sanet._transfer(cfeats, code, mask)
        got = masked_mean_std(t, mask)
        torch.testing.assert_close(got[0], code.tensors["mean"], rtol=1e-3, atol=5e-3)
        torch.testing.assert_close(got[1], code.tensors["std"], rtol=1e-3, atol=5e-3)
    masks = torch.zeros(1, 2, 64, 96)
    masks[:, 0, :, :48], masks[:, 1, :, 48:] = 1.0, 1.0
    assert torch.isfinite(norm_sanet.stylize(content, [a, b], masks=masks)).all()


def test_a_style_code_of_the_papers_transformer_is_refused(norm_sanet, random_encoder):
    paper = SANet.random_skip(random_encoder)
    code = paper.encode_style(synthetic_image(48, 48, seed=2))
    with pytest.raises(ParameterError, match="encode the style again"):
        norm_sanet.stylize(synthetic_image(48, 48)[None], code)


@pytest.fixture()
def folders(tmp_path) -> tuple[Path, Path]:
    return image_folders(tmp_path, 3, (64, 72), (64, 64))


@pytest.mark.parametrize("method", ["sanet", "rast"])
def test_norm_training_starts_from_a_papers_transformer_exports_and_loads(
    folders, tmp_path, random_encoder, monkeypatch, one_thread, method
):
    torch.manual_seed(2)
    paper = Transform()
    start = tmp_path / "start"
    start.mkdir()
    save_file({k: v.half() for k, v in paper.state_dict().items()}, start / "p.transformer.safetensors")
    save_file(
        {k: v.half() for k, v in SkipDecoder.random().state_dict().items()}, start / "p.decoder.safetensors"
    )
    cfg = TrainConfig(
        content_dirs=[folders[0]],
        style_dirs=[folders[1]],
        steps=1,
        method=method,
        batch=1,
        size=64,
        load_size=64,
        decoder="skip",
        transformer="norm",
        gan_weight=0,
        init_from=start / "p.transformer.safetensors",
    )
    assert cfg.transformer_arch() == "sanet-transformer-norm"
    trainer = Trainer(cfg, tmp_path / "n.ckpt", device="cpu", encoder=random_encoder)
    assert isinstance(trainer.transformer, NormalisedTransform)
    for k, v in trainer.transformer.state_dict().items():  # the attention blocks, merge_conv left out
        torch.testing.assert_close(v, paper.state_dict()[k].half().float(), msg=k)
    ckpt = trainer.run()
    root = tmp_path / "weights"
    root.mkdir()
    empty = Path(__file__).parent / "data" / "empty" / "catalog.json"
    (root / "catalog.json").write_text(empty.read_text())
    entry = export_checkpoint(ckpt, f"{method}-norm-test", root=root)
    assert {f["role"]: f["arch"] for f in entry["files"]}["transformer"] == "sanet-transformer-norm"
    monkeypatch.setenv("STYLEPIPE_WEIGHTS", str(root))
    monkeypatch.setattr("stylecore.methods.base.load_encoder", lambda *a, **k: random_encoder)
    stylizer = get_method(method).load(f"{method}-norm-test", catalog=load_catalog(), device="cpu")
    assert isinstance(stylizer.transformer, NormalisedTransform)
    result = stylizer.stylize(synthetic_image(64, 80)[None], stylizer.encode_style(synthetic_image(64, 64)))
    assert result.shape == (1, 3, 64, 80) and torch.isfinite(result).all()
