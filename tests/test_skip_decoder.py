"""The skip decoder: zero-initialised skips, AdaIN through it (masks, alpha), its training round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file, save_file

from stylecore.errors import ParameterError, WeightsError
from stylecore.methods import get_method
from stylecore.methods.adain import AdaIN
from stylecore.methods.sanet import SANet
from stylecore.models import build_module
from stylecore.nets.decoder import SKIP_LAYERS, SkipDecoder, VGGDecoder
from stylecore.nets.transformer import Transform
from stylecore.train.export import export_checkpoint
from stylecore.train.loop import TrainConfig, Trainer, log_columns
from stylecore.train.losses import (
    ADAIN_STYLE_LAYERS,
    adain_losses,
    rast_losses,
    reconstruction_loss,
    sanet_losses,
)
from stylecore.weights import load_catalog
from tests.conftest import image_folders, synthetic_image

SHAPES = {"relu4_1": (512, 4), "relu3_1": (256, 8), "relu2_1": (128, 16), "relu1_1": (64, 32)}


def random_levels(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.rand(1, c, s, s * 3 // 2, generator=gen) * 5 for k, (c, s) in SHAPES.items()}


def test_skip_decoder_starts_as_its_plain_body_and_keeps_its_keys():
    torch.manual_seed(0)
    plain = VGGDecoder("vgg16", "bilinear")
    skip = SkipDecoder("vgg16", "bilinear")
    body_keys = {k.removeprefix("body.") for k in skip.state_dict() if k.startswith("body.")}
    assert body_keys == set(plain.state_dict())
    assert set(skip.state_dict()) - {f"body.{k}" for k in body_keys} == {
        f"skip.{i}.{p}" for i in range(3) for p in ("weight", "bias")
    }
    skip.body.load_state_dict(plain.state_dict())
    levels = random_levels()
    with torch.no_grad():
        assert torch.equal(skip(levels["relu4_1"], levels), plain(levels["relu4_1"]))  # zero-initialised
        torch.nn.init.normal_(skip.skip[2].weight)  # a live relu1_1 path changes the output
        assert not torch.equal(skip(levels["relu4_1"], levels), plain(levels["relu4_1"]))
    assert isinstance(build_module("decoder-vgg16-bilinear-skip"), SkipDecoder)
    assert isinstance(build_module("decoder-vgg19-skip"), SkipDecoder)
    assert [c.in_channels for c in skip.skip] == [256, 128, 64] and skip.layers == SKIP_LAYERS


@pytest.fixture(scope="module")
def skip_adain(random_encoder) -> AdaIN:
    return AdaIN.random_skip(random_encoder)


def test_adain_with_a_skip_decoder_transfers_every_level(skip_adain, random_encoder):
    content = synthetic_image(48, 64, seed=1)[None]
    a, b = (
        skip_adain.encode_style(synthetic_image(40, 40, seed=2)),
        skip_adain.encode_style(synthetic_image(40, 40, seed=3).flip(0)),
    )
    assert set(a.tensors) == {"mean", "std"} | {f"{s}_{k}" for s in ("mean", "std") for k in SKIP_LAYERS}
    out = skip_adain.stylize(content, a)
    assert out.shape == (1, 3, 48, 64) and torch.isfinite(out).all()
    # the shallow levels' style statistics reach the output
    shifted = type(a)(a.method, a.encoder, {**a.tensors, "mean_relu1_1": a.tensors["mean_relu1_1"] + 1.0})
    assert (skip_adain.stylize(content, shifted) - out).abs().max() > 1e-3
    # alpha 0 decodes the content's own features at every level, alpha blends every level alike
    none = skip_adain.stylize(content, a, params={"alpha": 0.0})
    half = skip_adain.stylize(content, a, params={"alpha": 0.5})
    assert (none - out).abs().max() > 1e-3 and (half - out).abs().max() > 1e-4
    assert (half - none).abs().max() > 1e-4
    # one region covering the image is the unmasked transfer (masked statistics are biased: near)
    masks = torch.zeros(1, 2, 48, 64)
    masks[:, 0] = 1.0
    torch.testing.assert_close(skip_adain.stylize(content, [a, b], masks=masks), out, atol=5e-3, rtol=0)
    masks[:, :, :, 32:] = masks[:, :, :, 32:].flip(1)  # a left and a right region
    split = skip_adain.stylize(content, [a, b], masks=masks)
    assert (split[..., 40:] - out[..., 40:]).abs().max() > 1e-3
    # one batched pass per sample's own style and strength equals stylize per sample
    each = skip_adain.stylize_each(torch.cat([content, content]), [a, b], alphas=[1.0, 0.5])
    torch.testing.assert_close(each[:1], out, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        each[1:], skip_adain.stylize(content, b, params={"alpha": 0.5}), atol=1e-5, rtol=0
    )
    # a style code made for a plain decoder lacks the skip levels' statistics
    plain = AdaIN.random(random_encoder)
    with pytest.raises(ParameterError, match="without skip connections"):
        skip_adain.stylize(content, plain.encode_style(synthetic_image(40, 40, seed=2)))
    assert set(plain.encode_style(synthetic_image(40, 40, seed=2)).tensors) == {"mean", "std"}


def test_reconstruction_term_is_zero_only_for_the_content_itself(random_encoder):
    content = synthetic_image(32, 32, seed=5)[None]
    feats = random_encoder(content, ADAIN_STYLE_LAYERS)
    assert float(reconstruction_loss(random_encoder, lambda t: content, content, feats)) == 0.0
    assert float(reconstruction_loss(random_encoder, lambda t: content.flip(-1), content, feats)) > 0.0


def test_adain_losses_through_a_skip_decoder(random_encoder):
    torch.manual_seed(0)
    dec = SkipDecoder("vgg16", "bilinear")
    c, s = synthetic_image(32, 32, seed=1)[None], synthetic_image(32, 32, seed=2)[None]
    terms = adain_losses(random_encoder, dec, c, s, recon=True)
    assert set(terms) == {"content", "style", "gram", "structure", "grid", "palette", "peaks", "recon"}
    # at zero skips the skip decoder's terms are its body's
    plain = adain_losses(random_encoder, dec.body, c, s)
    for k, v in plain.items():
        torch.testing.assert_close(terms[k], v, msg=k)
    terms["style"].backward()
    assert dec.skip[0].weight.grad is not None and dec.skip[0].weight.grad.abs().sum() > 0


@pytest.fixture()
def folders(tmp_path) -> tuple[Path, Path]:
    return image_folders(tmp_path, 4)


def skip_config(folders, steps: int, **kw) -> TrainConfig:
    settings = {"batch": 2, "size": 32, "log_every": 1, "decoder": "skip"} | kw
    return TrainConfig(content_dirs=[folders[0]], style_dirs=[folders[1]], steps=steps, **settings)


def test_skip_config_settings(folders):
    cfg = skip_config(folders, 1)
    assert cfg.recon_weight == 50.0 and cfg.loss_weights()["recon"] == 50.0 and "recon" in log_columns(cfg)
    assert cfg.decoder_arch() == "decoder-vgg16-bilinear-skip"
    plain = skip_config(folders, 1, decoder="plain")
    assert plain.recon_weight == 0.0 and "recon" not in plain.loss_weights()
    assert "recon" not in log_columns(plain) and plain.decoder_arch() == "decoder-vgg16-bilinear"
    assert skip_config(folders, 1, decoder="plain", recon_weight=2).loss_weights()["recon"] == 2.0
    with pytest.raises(ValidationError, match="recon_weight applies to adain runs"):
        skip_config(folders, 1, method="sanet", size=64, recon_weight=5)
    sanet = skip_config(folders, 1, method="sanet", size=64)  # its identity losses reconstruct
    assert sanet.recon_weight == 0.0 and sanet.decoder_arch() == "decoder-vgg16-bilinear-skip"


def test_skip_training_resumes_exports_and_loads_from_the_catalog(
    folders, tmp_path, random_encoder, monkeypatch, one_thread
):
    # a plain decoder file starts the body; the skips start at zero
    torch.manual_seed(7)
    plain = VGGDecoder("vgg16", "bilinear")
    start = tmp_path / "plain.safetensors"
    save_file({k: v.half().contiguous() for k, v in plain.state_dict().items()}, str(start))
    full = Trainer(skip_config(folders, 3, init_from=start), tmp_path / "full.ckpt", encoder=random_encoder)
    for k, v in plain.state_dict().items():
        torch.testing.assert_close(full.decoder.body.state_dict()[k], v.half().float())
    assert all(float(c.weight.detach().abs().sum()) == 0.0 for c in full.decoder.skip)
    full.run()
    assert any(float(c.weight.detach().abs().sum()) > 0.0 for c in full.decoder.skip)  # the skips trained
    log = (tmp_path / "full.csv").read_text().splitlines()
    assert "recon" in log[0].split(",") and len(log) == 4

    out = tmp_path / "part.ckpt"
    Trainer(skip_config(folders, 2, init_from=start), out, encoder=random_encoder).run()
    with pytest.raises(ParameterError, match=r"skip decoder.*decoder=skip"):
        Trainer(skip_config(folders, 3, decoder="plain"), out, encoder=random_encoder).resume()
    resumed = Trainer(skip_config(folders, 3, init_from=start), out, encoder=random_encoder)
    assert resumed.resume() and resumed.step == 2
    ckpt = resumed.run()
    for k, v in full.decoder.state_dict().items():
        torch.testing.assert_close(resumed.decoder.state_dict()[k], v, msg=k)

    root = tmp_path / "weights"
    root.mkdir()
    (root / "catalog.json").write_text(
        (Path(__file__).parent / "data" / "empty" / "catalog.json").read_text()
    )
    entry = export_checkpoint(ckpt, "adain-skip-test", root=root)
    assert entry["files"][0]["arch"] == "decoder-vgg16-bilinear-skip"
    card = (root / "adain-skip-test.md").read_text()
    assert "| skip connections | not in the paper" in card and "| recon | 50 |" in card

    monkeypatch.setenv("STYLEPIPE_WEIGHTS", str(root))
    monkeypatch.setattr("stylecore.methods.base.load_encoder", lambda *a, **k: random_encoder)
    stylizer = get_method("adain").load("adain-skip-test", catalog=load_catalog(), device="cpu")
    assert isinstance(stylizer.decoder, SkipDecoder)
    for k, v in resumed.decoder.state_dict().items():
        torch.testing.assert_close(stylizer.decoder.state_dict()[k], v.half().float(), msg=k)
    code = stylizer.encode_style(synthetic_image(32, 32, seed=4))
    result = stylizer.stylize(synthetic_image(48, 64)[None], code)
    assert result.shape == (1, 3, 48, 64) and torch.isfinite(result).all()
    # an exported skip decoder is a starting point too (loaded whole, skips included)
    again = Trainer(
        skip_config(folders, 1, init_from="adain-skip-test"), tmp_path / "b.ckpt", encoder=random_encoder
    )
    for k, v in resumed.decoder.state_dict().items():
        torch.testing.assert_close(again.decoder.state_dict()[k], v.half().float(), msg=k)


def test_sanet_with_a_skip_decoder_transfers_every_level(random_encoder):
    sanet = SANet.random_skip(random_encoder)
    content = synthetic_image(64, 80, seed=1)[None]
    a = sanet.encode_style(synthetic_image(48, 48, seed=2))
    b = sanet.encode_style(synthetic_image(48, 48, seed=3).flip(0))
    assert {f"{s}_{k}" for s in ("mean", "std") for k in SKIP_LAYERS} < set(a.tensors)
    out = sanet.stylize(content, a)
    assert out.shape == (1, 3, 64, 80) and torch.isfinite(out).all()
    shifted = type(a)(a.method, a.encoder, {**a.tensors, "mean_relu1_1": a.tensors["mean_relu1_1"] + 1.0})
    assert (sanet.stylize(content, shifted) - out).abs().max() > 1e-3
    half = sanet.stylize(content, a, params={"alpha": 0.5})
    assert (half - out).abs().max() > 1e-4
    masks = torch.zeros(1, 2, 64, 80)
    masks[:, 0, :, :40], masks[:, 1, :, 40:] = 1.0, 1.0
    split = sanet.stylize(content, [a, b], masks=masks)
    assert (split[..., 48:] - out[..., 48:]).abs().max() > 1e-3
    each = sanet.stylize_each(torch.cat([content, content]), [a, b], alphas=[1.0, 0.5])
    torch.testing.assert_close(each[:1], out, atol=1e-5, rtol=0)
    plain = SANet.random(random_encoder)
    with pytest.raises(ParameterError, match="without skip connections"):
        sanet.stylize(content, plain.encode_style(synthetic_image(48, 48, seed=2)))


@pytest.mark.parametrize("losses", [sanet_losses, rast_losses])
def test_sanet_and_rast_losses_through_a_skip_decoder(random_encoder, losses):
    torch.manual_seed(0)
    dec, transformer = SkipDecoder("vgg16", "bilinear"), Transform()
    c, s = synthetic_image(64, 64, seed=1)[None], synthetic_image(64, 64, seed=2)[None]
    terms, _ = losses(random_encoder, transformer, dec, c, s, scale_features=True)
    plain, _ = losses(random_encoder, transformer, dec.body, c, s, scale_features=True)
    for k, v in plain.items():  # at zero skips the skip decoder's terms are its body's
        torch.testing.assert_close(terms[k], v, msg=k)
    terms["identity1"].backward()
    assert dec.skip[2].weight.grad is not None and dec.skip[2].weight.grad.abs().sum() > 0


def test_sanet_skip_training_exports_and_loads(folders, tmp_path, random_encoder, monkeypatch, one_thread):
    cfg = skip_config(folders, 2, method="sanet", size=64, load_size=64, identity2_weight=0)
    trainer = Trainer(cfg, tmp_path / "s.ckpt", encoder=random_encoder)
    assert isinstance(trainer.decoder, SkipDecoder)
    ckpt = trainer.run()
    assert any(float(c.weight.detach().abs().sum()) > 0.0 for c in trainer.decoder.skip)
    root = tmp_path / "weights"
    root.mkdir()
    (root / "catalog.json").write_text(
        (Path(__file__).parent / "data" / "empty" / "catalog.json").read_text()
    )
    entry = export_checkpoint(ckpt, "sanet-skip-test", root=root)
    archs = {f["role"]: f["arch"] for f in entry["files"]}
    assert archs["decoder"] == "decoder-vgg16-bilinear-skip"
    assert "| skip connections | not in the paper" in (root / "sanet-skip-test.md").read_text()
    monkeypatch.setenv("STYLEPIPE_WEIGHTS", str(root))
    monkeypatch.setattr("stylecore.methods.base.load_encoder", lambda *a, **k: random_encoder)
    stylizer = get_method("sanet").load("sanet-skip-test", catalog=load_catalog(), device="cpu")
    assert isinstance(stylizer.decoder, SkipDecoder)
    result = stylizer.stylize(synthetic_image(64, 80)[None], stylizer.encode_style(synthetic_image(64, 64)))
    assert result.shape == (1, 3, 64, 80) and torch.isfinite(result).all()


def test_export_blends_the_trained_weights_with_their_start(folders, tmp_path, random_encoder, one_thread):
    torch.manual_seed(3)
    start_dec, start_tr = VGGDecoder("vgg16", "bilinear"), Transform()
    for role, net in (("decoder", start_dec), ("transformer", start_tr)):
        save_file(
            {k: v.half().contiguous() for k, v in net.state_dict().items()},
            str(tmp_path / f"s.{role}.safetensors"),
        )
    start = tmp_path / "s.decoder.safetensors"
    cfg = skip_config(folders, 1, method="sanet", size=64, load_size=64, init_from=start, identity2_weight=0)
    trainer = Trainer(cfg, tmp_path / "b.ckpt", encoder=random_encoder)
    ckpt = trainer.run()
    root = tmp_path / "weights"
    root.mkdir()
    (root / "catalog.json").write_text(
        (Path(__file__).parent / "data" / "empty" / "catalog.json").read_text()
    )
    entry = export_checkpoint(ckpt, "half", root=root, blend_from=start, blend=0.5)
    assert entry["meta"]["blend"] == {"from": str(start), "share": 0.5}
    assert "| blended | 0.5 x the trained weights + 0.5 x" in (root / "half.md").read_text()
    half = load_file(str(root / "half.decoder.safetensors"))
    trained = trainer.decoder.state_dict()
    for k, v in start_dec.state_dict().items():  # the plain start is the body
        want = 0.5 * trained[f"body.{k}"] + 0.5 * v.half().float()
        torch.testing.assert_close(half[f"body.{k}"].float(), want, atol=2e-3, rtol=1e-2)
    torch.testing.assert_close(
        half["skip.2.weight"].float(), 0.5 * trained["skip.2.weight"], atol=1e-3, rtol=1e-2
    )
    tr = load_file(str(root / "half.transformer.safetensors"))
    k = "sanet4_1.f.weight"
    want = 0.5 * trainer.transformer.state_dict()[k] + 0.5 * start_tr.state_dict()[k].half().float()
    torch.testing.assert_close(tr[k].float(), want, atol=2e-3, rtol=1e-2)
    with pytest.raises(WeightsError, match="blend_from"):
        export_checkpoint(ckpt, "bad", root=root, blend_from=tmp_path / "nothing.safetensors", blend=0.5)
    with pytest.raises(ParameterError, match="between 0 and 2"):
        export_checkpoint(ckpt, "bad", root=root, blend_from=start, blend=2.5)
    # above 1 it extrapolates: trained + (share - 1) x (trained - start)
    export_checkpoint(ckpt, "twice", root=root, blend_from=start, blend=2.0)
    assert "| extrapolated | 2 x the trained weights - 1 x" in (root / "twice.md").read_text()
    tr = load_file(str(root / "twice.transformer.safetensors"))
    want = 2.0 * trainer.transformer.state_dict()[k] - start_tr.state_dict()[k].half().float()
    torch.testing.assert_close(tr[k].float(), want, atol=4e-3, rtol=1e-2)


def test_fewer_skip_levels_keep_the_deepest(folders, tmp_path, random_encoder, one_thread):
    torch.manual_seed(3)
    one = SkipDecoder.random("vgg16", skips=1)
    assert one.layers == ("relu3_1",) and [c.in_channels for c in one.skip] == [256]
    assert {k for k in one.state_dict() if k.startswith("skip.")} == {"skip.0.weight", "skip.0.bias"}
    levels = random_levels()
    with torch.no_grad():
        out = one(levels["relu4_1"], levels)
        finer = {**levels, "relu2_1": levels["relu2_1"] + 1, "relu1_1": levels["relu1_1"] + 1}
        assert torch.equal(one(levels["relu4_1"], finer), out)  # the finer levels are not read
        deeper = {**levels, "relu3_1": levels["relu3_1"] + 1}
        assert not torch.equal(one(levels["relu4_1"], deeper), out)
    assert isinstance(build_module("decoder-vgg16-bilinear-skip1"), SkipDecoder)
    assert build_module("decoder-vgg16-bilinear-skip2").layers == ("relu3_1", "relu2_1")
    with pytest.raises(ValueError, match="1 to 3 skip levels"):
        SkipDecoder("vgg16", skips=0)
    # AdaIN's style code holds the statistics of the levels the decoder reads, no others
    adain = AdaIN(random_encoder, one)
    code = adain.encode_style(synthetic_image(40, 40, seed=2))
    assert set(code.tensors) == {"mean", "std", "mean_relu3_1", "std_relu3_1"}
    assert adain.stylize(synthetic_image(48, 64, seed=1)[None], code).shape == (1, 3, 48, 64)

    cfg = skip_config(folders, 1, skips=1)
    assert cfg.decoder_arch() == "decoder-vgg16-bilinear-skip1"
    with pytest.raises(ValidationError, match="skips"):
        skip_config(folders, 1, skips=4)
    # a decoder with all three levels starts one with a single level: body and relu3_1 skip carried over
    full = SkipDecoder.random("vgg16")
    start = tmp_path / "full.safetensors"
    save_file({k: v.half().contiguous() for k, v in full.state_dict().items()}, str(start))
    trainer = Trainer(
        skip_config(folders, 1, skips=1, init_from=start), tmp_path / "one.ckpt", encoder=random_encoder
    )
    kept = trainer.decoder.state_dict()
    assert set(kept) == set(one.state_dict())
    for k, v in kept.items():
        torch.testing.assert_close(v, full.state_dict()[k].half().float(), msg=k)
