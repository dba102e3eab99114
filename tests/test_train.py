"""Training: exact resume, export to the catalog, the losses of AdaIN, SANet and RAST by hand."""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file
from torch.nn import functional as F

from stylecore.device import describe_device
from stylecore.errors import ParameterError, WeightsError
from stylecore.methods import get_method
from stylecore.nets.decoder import VGGDecoder
from stylecore.nets.discriminator import MultiScalePatchGAN
from stylecore.nets.encoder import STYLE_LAYERS, VGGEncoder
from stylecore.nets.transformer import Transform
from stylecore.train.export import export_checkpoint, hardware_summary, read_metrics
from stylecore.train.loop import METHOD_ROLES, METHODS, TrainConfig, Trainer, log_columns
from stylecore.train.losses import (
    DEFAULT_WEIGHTS,
    adain_losses,
    discriminator_loss,
    generator_gan_loss,
    gram_loss,
    grid_loss,
    identity_losses,
    mean_std_loss,
    normalised_content_loss,
    palette_loss,
    peaks_loss,
    rast_losses,
    sanet_losses,
    style_difference_loss,
    style_loss,
)
from stylecore.weights import load_catalog
from tests.conftest import image_folders, needs_hed, synthetic_image


@pytest.fixture()
def folders(tmp_path) -> tuple[Path, Path]:
    content, style = image_folders(tmp_path, 5)
    (content / "broken.jpg").write_bytes(b"")  # skipped, not fatal
    return content, style


def config(folders, steps: int, **kw) -> TrainConfig:
    settings = {"batch": 2, "size": 32, "log_every": 1} | kw
    return TrainConfig(content_dirs=[folders[0]], style_dirs=[folders[1]], steps=steps, **settings)


def test_killed_and_resumed_run_equals_uninterrupted(folders, tmp_path, random_encoder, one_thread):
    full = Trainer(config(folders, 4), tmp_path / "full.ckpt", device="cpu", encoder=random_encoder)
    full.run()

    out = tmp_path / "runs" / "part.ckpt"  # a folder that does not exist yet
    part = Trainer(config(folders, 2), out, device="cpu", encoder=random_encoder)
    part.run()  # "killed" after its checkpoint at step 2
    resumed = Trainer(config(folders, 4), out, device="cpu", encoder=random_encoder)
    assert resumed.resume() and resumed.step == 2
    resumed.run()

    for (k, a), (_, b) in zip(
        full.decoder.state_dict().items(), resumed.decoder.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
    log = out.with_suffix(".csv").read_text().splitlines()
    assert log[0].startswith("step,") and [row.split(",")[0] for row in log[1:]] == ["1", "2", "3", "4"]


def test_weight_average_resumes_exactly_and_is_what_export_ships(
    folders, tmp_path, random_encoder, one_thread
):
    decay = 0.5
    out = tmp_path / "full.ckpt"
    full = Trainer(config(folders, 1, ema_decay=decay), out, device="cpu", encoder=random_encoder)
    seen = [{k: v.clone() for k, v in full.decoder.state_dict().items()}]  # the average starts here
    full.run()
    shutil.copy(out, tmp_path / "part.ckpt")
    seen.append({k: v.clone() for k, v in full.decoder.state_dict().items()})
    full.cfg = config(folders, 3, ema_decay=decay)
    while full.step < 3:  # step by step, to see each step's weights
        full.train_step()
        seen.append({k: v.clone() for k, v in full.decoder.state_dict().items()})
    full.save()
    for k, avg in full.ema["decoder"].items():  # by hand: avg = 0.5 avg + 0.5 weights, every step
        expect = seen[0][k].float()
        for weights in seen[1:]:
            expect = decay * expect + (1 - decay) * weights[k].float()
        torch.testing.assert_close(avg, expect, msg=k)
    first = next(iter(seen[-1]))
    assert not torch.equal(full.ema["decoder"][first], seen[-1][first])  # an average, not the last step

    resumed = Trainer(
        config(folders, 3, ema_decay=decay), tmp_path / "part.ckpt", device="cpu", encoder=random_encoder
    )
    assert resumed.resume() and resumed.step == 1
    resumed.run()
    for k, avg in full.ema["decoder"].items():
        torch.testing.assert_close(resumed.ema["decoder"][k], avg, rtol=0, atol=0, msg=k)

    root = tmp_path / "weights"
    entry = export_checkpoint(out, "adain-avg", root=root)
    shipped = load_file(root / entry["files"][0]["filename"])
    for k, avg in full.ema["decoder"].items():
        torch.testing.assert_close(shipped[k], avg.half(), rtol=0, atol=0, msg=k)
    assert "running average of the training weights, decay 0.5" in (root / "adain-avg.md").read_text()
    # a run without the setting ships its last weights and says nothing of an average
    plain = Trainer(config(folders, 1), tmp_path / "plain.ckpt", device="cpu", encoder=random_encoder)
    entry = export_checkpoint(plain.run(), "adain-plain", root=root)
    shipped = load_file(root / entry["files"][0]["filename"])
    for k, weights in plain.decoder.state_dict().items():
        torch.testing.assert_close(shipped[k], weights.half(), rtol=0, atol=0, msg=k)
    assert "running average" not in (root / "adain-plain.md").read_text()


def test_export_writes_fp16_catalog_entry_and_card(folders, tmp_path, random_encoder):
    trainer = Trainer(config(folders, 1), tmp_path / "run.ckpt", device="cpu", encoder=random_encoder)
    ckpt = trainer.run()
    root = tmp_path / "weights"  # a folder that does not exist yet: export starts its catalog
    quality = tmp_path / "adain.json"  # as benchmarks/quality.py writes it
    quality.write_text('{"method": "adain", "f_c": 101.23456, "f_s": 55.5, "settings": {"size": 512}}')
    entry = export_checkpoint(ckpt, "adain-test", root=root, metrics=read_metrics(quality))
    assert entry["files"][0]["arch"] == "decoder-vgg16-bilinear"  # new runs train bilinear decoders
    catalog = load_catalog(root)
    assert catalog.is_installed("adain-test")
    card = (root / "adain-test.md").read_text()
    assert "steps | 1" in card and "| f_c | 101.2346 |" in card and "| settings.size | 512 |" in card
    assert "| decoder upsampling | bilinear" in card
    # the card says which device trained which steps, as the checkpoint recorded it
    here = describe_device("cpu")
    assert f"| hardware | steps 0-1: {here} |" in card
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(WeightsError, match="must be a JSON object"):
        read_metrics(tmp_path / "bad.json")
    # the encoder entry is not in this test catalog, so load the decoder through the module layer
    from stylecore.models import load_module

    dec = load_module("decoder-vgg16-bilinear", catalog.verified_path(catalog.get("adain-test"), "decoder"))
    for k, v in trainer.decoder.state_dict().items():
        torch.testing.assert_close(dec.state_dict()[k], v.half().float())
    assert get_method("adain").default_weights == "adain-vgg16hed-skip"
    more = Trainer(config(folders, 3), tmp_path / "run.ckpt", device="cpu", encoder=random_encoder)
    assert more.resume()
    more.hardware_log[0]["hardware"] = "another machine"  # as if the first step ran elsewhere
    export_checkpoint(more.run(), "adain-more", root=root)
    assert (
        f"| hardware | steps 0-1: another machine; steps 1-3: {here} |"
        in (root / "adain-more.md").read_text()
    )
    more.train_step()
    more.save()  # as the CLI saves after Ctrl-C or SIGTERM, outside run(): the record follows
    assert torch.load(more.out, weights_only=True)["hardware_log"][-1]["to_step"] == 4
    resumed_old = [{"hardware": "x", "from_step": 5, "to_step": 9}]  # resumed a checkpoint without a record
    assert hardware_summary(resumed_old) == "steps 0-5: not recorded; steps 5-9: x"


def test_style_loss_is_zero_for_matching_statistics():
    a = torch.randn(2, 8, 6, 6)
    assert float(mean_std_loss(a, a)) == 0.0
    assert float(mean_std_loss(a, a * 2 + 1)) > 0.0


def test_adain_losses_terms(random_encoder):
    from stylecore.nets.decoder import VGGDecoder

    torch.manual_seed(0)
    dec = VGGDecoder("vgg16")
    c, s = synthetic_image(32, 32, seed=1)[None], synthetic_image(32, 32, seed=2)[None]
    terms = adain_losses(random_encoder, dec, c, s)
    assert set(terms) == {"content", "style", "gram", "structure", "grid", "palette", "peaks"}
    assert all(v.item() > 0 for k, v in terms.items() if k != "peaks")  # peaks: none in 32 px noise
    terms["style"].backward()
    assert all(p.grad is not None for p in dec.parameters())


# ---- SANet / RAST losses on hand-made tensors ------------------------------------------------------------


class PixelEncoder(torch.nn.Module):
    """A stand-in encoder whose every "layer" is the image itself: losses become checkable by hand."""

    name = "vgg16-hed"

    def forward(self, image, layers=STYLE_LAYERS):
        return {k: image for k in layers}


class CopyTransform(torch.nn.Module):
    """T(c, s) = the content's (``source="content"``) or the style's relu4_1 "features" (here: pixels)."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    def forward(self, c4, s4, c5, s5):
        return c4 if self.source == "content" else s4


def two_images() -> tuple[torch.Tensor, torch.Tensor]:
    return synthetic_image(32, 32, seed=1)[None], synthetic_image(32, 32, seed=2).flip(1)[None] * 0.6


def test_adain_structure_term_ignores_the_style_statistics_but_not_the_layout():
    """With pixels as features, t = AdaIN(c, s) is c with each channel's mean/std set to the style's:
    an identity decoder keeps the structure exactly (0), a mirrored one does not."""
    c, s = two_images()
    keep = adain_losses(PixelEncoder(), torch.nn.Identity(), c, s)
    assert float(keep["structure"]) == pytest.approx(0.0, abs=1e-6)
    assert float(keep["content"]) == pytest.approx(0.0, abs=1e-8)
    mirror = adain_losses(PixelEncoder(), lambda t: t.flip(-1), c, s)
    assert float(mirror["structure"]) > 0.1


def test_style_loss_zero_for_same_statistics_positive_otherwise():
    a = torch.randn(2, 8, 6, 6)
    shuffled = a.flatten(2)[..., torch.randperm(36)].view_as(a)  # same per-channel stats, new layout
    feats = {k: a for k in STYLE_LAYERS}
    assert float(style_loss(feats, {k: shuffled for k in STYLE_LAYERS})) == pytest.approx(0.0, abs=1e-10)
    assert float(style_loss(feats, {k: a * 2 + 1 for k in STYLE_LAYERS})) > 0.0


def test_normalised_content_loss_ignores_channel_statistics_but_not_layout():
    a = torch.randn(2, 8, 6, 6)
    fa = {"relu4_1": a, "relu5_1": a}
    scaled = {"relu4_1": a * 3 + 2, "relu5_1": a * 0.5 - 1}
    assert float(normalised_content_loss(fa, scaled)) == pytest.approx(0.0, abs=1e-8)
    flipped = {k: v.flip(-1) for k, v in fa.items()}
    assert float(normalised_content_loss(fa, flipped)) > 0.1


def test_style_difference_loss_falls_as_the_style_moves_away():
    source = {k: torch.randn(1, 8, 6, 6) for k in STYLE_LAYERS}
    values = []
    for shift in (0.5, 1.0, 2.0, 4.0):  # the output's statistics move further from the source's
        output = {k: v * (1 + shift) + shift for k, v in source.items()}
        value = style_difference_loss(output, source)
        torch.testing.assert_close(value, 1.0 / style_loss(output, source))
        values.append(float(value))
    assert values == sorted(values, reverse=True) and values[-1] < values[0] / 10


def test_grid_loss_is_the_square_of_the_repeated_tile_and_pulls_it_out():
    smooth = synthetic_image(96, 128, seed=4)
    smooth = F.avg_pool2d(smooth[None], 9, stride=1, padding=4, count_include_pad=False)
    yy, xx = torch.meshgrid(torch.arange(96), torch.arange(128), indexing="ij")
    checker = ((xx + yy) % 2 * 2 - 1).float().expand(1, 3, -1, -1)  # RMS 1, every channel
    assert grid_loss(smooth) < 0.3  # smooth content averages out (to 0.4 levels RMS here)
    # a 2 px checkerboard repeats with 4 and 8 px too: 3 periods x (2 levels)^2
    assert grid_loss(smooth + 2 * checker / 255) == pytest.approx(12.0, abs=0.3)
    tile = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(1)) - 0.5
    tile = (tile - tile.mean(dim=(1, 2), keepdim=True)) / (tile - tile.mean()).pow(2).mean().sqrt()
    x = (smooth + 2 * tile.repeat(1, 12, 16)[None] / 255).requires_grad_(True)
    loss = grid_loss(x)
    assert loss > 4.0  # the 8 px term alone is 2^2
    loss.backward()
    assert grid_loss(x.detach() - 1e-6 * x.grad) < loss  # its gradient removes the pattern


def test_peaks_loss_takes_stripes_the_inputs_lack_and_pulls_them_out():
    gen = torch.Generator().manual_seed(3)
    content = torch.rand(2, 3, 96, 96, generator=gen) * 0.5 + 0.25
    style = torch.rand(2, 3, 96, 96, generator=gen) * 0.5 + 0.25
    xx = torch.arange(96).float()
    stripes = 3 * math.sqrt(2) * torch.sin(2 * math.pi * xx / 3.2) / 255  # 3 grey levels RMS
    assert float(peaks_loss(content, content, style)) < 0.05
    out = (content + stripes).requires_grad_(True)
    loss = peaks_loss(out, content, style)
    assert float(loss.detach()) == pytest.approx(9.0, rel=0.25)  # 3^2 grey levels squared
    assert float(peaks_loss(content + stripes, content, style + stripes)) < 0.05  # the style's own
    loss.backward()
    assert peaks_loss(out.detach() - 0.02 * out.grad, content, style) < loss / 2  # it removes the stripes


def test_palette_loss_counts_colour_offsets_in_grey_levels_and_ignores_layout():
    x = synthetic_image(64, 64, seed=3)[None]
    assert float(palette_loss(x, x.flip(-1).roll(7, dims=-2))) == pytest.approx(0.0, abs=1e-6)
    # 10 levels brighter in every channel (no clipping here): a mean term of 10^2, no std term
    shifted = x * 0.8 + 0.1
    assert float(palette_loss(shifted + 10 / 255, shifted)) == pytest.approx(100.0, rel=1e-3)
    # contrast counts too, and the gradient moves the colours towards the reference's
    flat = (shifted * 0.5 + 0.25).requires_grad_(True)
    loss = palette_loss(flat, shifted)
    assert loss > 0
    loss.backward()
    assert palette_loss(flat.detach() - 1e-4 * flat.grad, shifted) < loss


def test_identity_losses_zero_when_the_networks_reproduce_their_inputs():
    c, s = two_images()
    enc, dec = PixelEncoder(), torch.nn.Identity()
    feats = (enc(c), enc(s))
    terms = identity_losses(enc, CopyTransform("content"), dec, (c, s), feats)
    assert float(terms["identity1"]) == 0.0 and float(terms["identity2"]) == 0.0
    half = identity_losses(enc, ScaledCopy(0.5), dec, (c, s), feats)
    assert float(half["identity1"]) > 0.0 and float(half["identity2"]) > 0.0


class ScaledCopy(torch.nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, c4, s4, c5, s5):
        return c4 * self.factor


def test_sanet_losses_by_hand():
    c, s = two_images()
    # a transform that ignores the style reproduces the content: no content loss, the full style loss
    terms, out = sanet_losses(PixelEncoder(), CopyTransform("content"), torch.nn.Identity(), c, s)
    assert set(terms) == set(DEFAULT_WEIGHTS["sanet"]) - {"gan"}  # the trainer adds gan (a discriminator's)
    torch.testing.assert_close(out, c)
    assert float(terms["content"]) == 0.0 and float(terms["identity1"]) == 0.0
    torch.testing.assert_close(terms["grid"], grid_loss(c))  # the output is the content itself
    torch.testing.assert_close(terms["palette"], palette_loss(c, s))
    torch.testing.assert_close(terms["peaks"], peaks_loss(c, c, s))
    assert float(terms["structure"]) == pytest.approx(0.0, abs=1e-6)
    feats = {k: c for k in STYLE_LAYERS}
    torch.testing.assert_close(terms["style"], style_loss(feats, {k: s for k in STYLE_LAYERS}))
    # identity=False skips the identity passes and nothing else
    mixed, _ = sanet_losses(PixelEncoder(), MixTransform(), torch.nn.Identity(), c, s)
    without, _ = sanet_losses(PixelEncoder(), MixTransform(), torch.nn.Identity(), c, s, identity=False)
    assert set(without) == set(mixed) - {"identity1", "identity2"}
    for name, value in without.items():
        torch.testing.assert_close(value, mixed[name], msg=name)


class MixTransform(torch.nn.Module):
    """T(c, s) = half the content plus half the mirrored style: every loss term is non-zero."""

    def forward(self, c4, s4, c5, s5):
        return 0.5 * c4 + 0.5 * s4.flip(-1)


def test_feature_scaling_rebalances_feature_terms_only():
    """scale_features divides each layer by its mean activation: the mean/std and feature-MSE terms
    shrink by the squared scale, the normalised content loss and the pixel identity loss do not move."""
    from stylecore.train.scales import feature_scale

    c, s = two_images()
    enc = PixelEncoder()
    raw, _ = sanet_losses(enc, MixTransform(), torch.nn.Identity(), c, s)
    rescaled, _ = sanet_losses(enc, MixTransform(), torch.nn.Identity(), c, s, scale_features=True)
    torch.testing.assert_close(rescaled["content"], raw["content"], rtol=0.02, atol=0)  # eps aside
    torch.testing.assert_close(rescaled["identity1"], raw["identity1"])
    out = 0.5 * c + 0.5 * s.flip(-1)
    expected = sum(mean_std_loss(out, s) / feature_scale(enc, k) ** 2 for k in STYLE_LAYERS)
    torch.testing.assert_close(rescaled["style"], expected, rtol=0.01, atol=0)  # eps aside
    assert 0 < float(rescaled["identity2"]) < float(raw["identity2"]) / 2


def test_rast_losses_by_hand():
    """A transform that copies the style image exactly restores everything: every restoration term is 0,
    while L_diff is 1 / style distance (per path) and the plain content loss is positive."""
    c, s = two_images()
    terms, images = rast_losses(PixelEncoder(), CopyTransform("style"), torch.nn.Identity(), c, s)
    assert set(terms) == set(DEFAULT_WEIGHTS["rast"]) - {"gan"}
    for name in ("content_transitive", "style_transitive", "content_restoration", "style_restoration"):
        assert float(terms[name]) == pytest.approx(0.0, abs=1e-9), name
    assert float(terms["identity1"]) == 0.0
    assert float(terms["palette"]) == pytest.approx(0.0, abs=1e-6)  # both outputs have their palettes
    fc, fs = ({k: x for k in STYLE_LAYERS} for x in (c, s))
    torch.testing.assert_close(terms["style_diff"], 1 / style_loss(fs, fc) + 1 / style_loss(fc, fs))
    assert float(terms["content"]) > 0.0
    torch.testing.assert_close(images.stylized, s)  # T(c, s) -> s
    torch.testing.assert_close(images.reversed, c)  # T(s, c) -> c
    # a transform that keeps the content keeps the content's style: L_diff is unbounded
    kept, _ = rast_losses(PixelEncoder(), CopyTransform("content"), torch.nn.Identity(), c, s)
    assert torch.isinf(kept["style_diff"])


def test_discriminator_scales_and_lsgan_on_constant_outputs():
    disc = MultiScalePatchGAN(scales=3).requires_grad_(False)
    x = torch.rand(2, 3, 128, 128)
    assert [tuple(o.shape) for o in disc(x)] == [(2, 1, 8, 8), (2, 1, 4, 4), (2, 1, 2, 2)]
    for model in disc.models:  # every patch score becomes the constant 0.25
        torch.nn.init.zeros_(model[-1].weight)
        torch.nn.init.constant_(model[-1].bias, 0.25)
    assert float(disc.lsgan_loss(x, True)) == pytest.approx(3 * 0.75**2)
    assert float(disc.lsgan_loss(x, False)) == pytest.approx(3 * 0.25**2)
    with pytest.raises(ParameterError, match="at least 128 px"):
        disc(torch.rand(1, 3, 64, 64))
    assert MultiScalePatchGAN.min_size(2) == 64


def test_gan_losses_train_the_discriminator_or_the_generator():
    disc = MultiScalePatchGAN(scales=1)
    torch.nn.init.zeros_(disc.models[0][-1].weight)
    torch.nn.init.constant_(disc.models[0][-1].bias, 0.25)  # every patch scores 0.25
    real, fake = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32, requires_grad=True)
    d_loss = discriminator_loss([(disc, real, fake)])
    assert float(d_loss.detach()) == pytest.approx(0.75**2 + 0.25**2)  # real -> 1, fake -> 0
    d_loss.backward()
    assert fake.grad is None and disc.models[0][-1].bias.grad is not None  # the generator is left alone
    g_loss = generator_gan_loss([(disc, real, fake), (disc, real, fake)])
    assert float(g_loss.detach()) == pytest.approx(2 * 0.75**2)  # each fake should score 1, summed over pairs
    g_loss.backward()
    assert fake.grad is not None


def test_sanet_gan_settings(folders, tmp_path, random_encoder, tiny_crops, one_thread):
    assert small_config(folders, "sanet", 1).discriminators == ()
    assert small_config(folders, "sanet", 1, **SANET_GAN).discriminators == ("disc_style",)
    with pytest.raises(ValidationError, match="runs with a GAN term"):
        small_config(folders, "sanet", 1, gan_scales=2)  # no GAN term: no discriminator to scale
    with pytest.raises(ParameterError, match="at least 128 px"):
        Trainer(config(folders, 1, method="sanet", size=64, gan_weight=1), tmp_path / "x.ckpt")
    # a run without the GAN term cannot go on with one: it has no discriminator to continue
    plain = Trainer(
        small_config(folders, "sanet", 1), tmp_path / "p.ckpt", device="cpu", encoder=random_encoder
    )
    plain.run()
    gan = Trainer(
        small_config(folders, "sanet", 2, **SANET_GAN),
        tmp_path / "p.ckpt",
        device="cpu",
        encoder=random_encoder,
    )
    with pytest.raises(ParameterError, match="without a GAN term"):
        gan.resume()


# ---- config ----------------------------------------------------------------------------------------------


def test_old_adain_checkpoint_config_still_validates():
    old = {  # a config as the AdaIN-only trainer wrote it into checkpoints
        "method": "adain", "content_dirs": ["a"], "style_dirs": ["b"], "exclude": [], "steps": 30000,
        "batch": 8, "size": 128, "load_size": None, "lr": 0.0003, "lr_decay": 5e-05,
        "content_weight": 1.0, "style_weight": 10.0, "encoder": "vgg16-hed", "seed": 0, "amp": True,
        "init_from": None, "checkpoint_every_s": 300.0, "log_every": 10,
    }  # fmt: skip
    cfg = TrainConfig.from_checkpoint(old)
    weights = {"content": 1.0, "style": 10.0, "gram": 0.0, "structure": 0.0, "grid": 0.0, "palette": 0.0}
    assert cfg.loss_weights() == weights | {"peaks": 0.0}
    assert cfg.scale_features is False
    # checkpoints from before the upsample setting trained nearest decoders; new runs train bilinear
    assert cfg.upsample == "nearest" and cfg.decoder_arch() == "decoder-vgg16"
    assert TrainConfig.model_validate(old).decoder_arch() == "decoder-vgg16-bilinear"
    assert TrainConfig.from_checkpoint(cfg.model_dump(mode="json")) == cfg


def test_resume_refuses_another_upsampling(folders, tmp_path, random_encoder, one_thread):
    out = tmp_path / "run.ckpt"
    Trainer(config(folders, 1, upsample="nearest"), out, device="cpu", encoder=random_encoder).run()
    other = Trainer(config(folders, 2), out, device="cpu", encoder=random_encoder)
    with pytest.raises(ParameterError, match=r"nearest upsampling.*\(upsample=nearest\)"):
        other.resume()
    same = Trainer(config(folders, 2, upsample="nearest"), out, device="cpu", encoder=random_encoder)
    assert same.resume() and same.decoder.upsample == "nearest"


def test_loss_weight_defaults_overrides_and_foreign_terms(folders):
    sanet = config(folders, 1, method="sanet", size=64)
    assert sanet.loss_weights() == {
        "content": 1.0, "style": 3.0, "gram": 0.0, "identity1": 50.0, "identity2": 1.0, "gan": 0.0,
        "structure": 0.0, "grid": 0.0, "palette": 0.0, "peaks": 0.0,
    }  # fmt: skip
    assert sanet.scale_features is True and config(folders, 1).scale_features is False
    assert config(folders, 1, method="sanet", size=64, scale_features=False).scale_features is False
    assert config(folders, 1, method="sanet", size=64, style_weight=5).loss_weights()["style"] == 5.0
    rast = config(folders, 1, method="rast", size=128).loss_weights()
    assert (rast["content_transitive"], rast["style_diff"], rast["gan"], rast["identity1"]) == (2, 2, 5, 50)
    with pytest.raises(ValidationError, match="gan_weight"):
        config(folders, 1, method="adain", gan_weight=1.0)
    with pytest.raises(ValidationError, match="identity1_weight"):  # AdaIN has no identity terms
        config(folders, 1, method="adain", identity1_weight=1.0)
    # this project's terms are every method's, off by default (the papers' objectives)
    for term in ("gram", "structure", "grid", "palette", "peaks"):
        assert all(
            config(folders, 1, method=m, size=128, **{f"{term}_weight": 2}).loss_weights()[term] == 2
            for m in METHODS
        )


def test_resume_rewrites_a_log_written_before_a_term_existed(folders, tmp_path, random_encoder, one_thread):
    out = tmp_path / "run.ckpt"
    Trainer(config(folders, 1), out, device="cpu", encoder=random_encoder).run()
    log = out.with_suffix(".csv")
    header, row = log.read_text().splitlines()
    old = [c for c in header.split(",") if c != "grid"]  # as the log looked before the grid term
    values = dict(zip(header.split(","), row.split(","), strict=True))
    log.write_text(",".join(old) + "\n" + ",".join(values[c] for c in old) + "\n")
    resumed = Trainer(config(folders, 2), out, device="cpu", encoder=random_encoder)
    assert resumed.resume()
    resumed.run()
    header, first, second = log.read_text().splitlines()
    columns = log_columns(resumed.cfg)
    assert header.split(",") == columns
    first = dict(zip(columns, first.split(","), strict=True))
    assert first["grid"] == "" and first["step"] == "1" and first["style"] == values["style"]
    assert second.split(",")[0] == "2" and len(second.split(",")) == len(columns)
    # a log whose header was cut off is refused, not rewritten into empty rows
    headless = "\n".join(",".join([str(step)] * len(old)) for step in (1, 2)) + "\n"
    log.write_text(headless)
    third = Trainer(config(folders, 3), out, device="cpu", encoder=random_encoder)
    assert third.resume()
    with pytest.raises(ParameterError, match="not a training log header"):
        third.run()
    assert log.read_text() == headless


@pytest.mark.parametrize(
    ("method", "size", "message"),
    [("sanet", 72, "divides by 16"), ("sanet", 48, "at least 64"), ("rast", 64, "at least 128")],
)
def test_sanet_and_rast_crop_sizes_are_checked(folders, tmp_path, random_encoder, method, size, message):
    with pytest.raises(ParameterError, match=message):
        Trainer(config(folders, 1, method=method, size=size), tmp_path / "x.ckpt", encoder=random_encoder)


# ---- SANet / RAST training: exact resume, export, init-from ----------------------------------------------

# Tiny crops keep these fast: 32 px (relu5_1 is 2x2) is below the advised floor but works, and rast's
# discriminators then get one scale.
SMALL = {"sanet": {"size": 32}, "rast": {"size": 32, "gan_scales": 1}}


@pytest.fixture()
def tiny_crops(monkeypatch):
    monkeypatch.setattr("stylecore.train.loop.SANET_MIN_SIZE", 32)


def small_config(folders, method: str, steps: int, **kw) -> TrainConfig:
    return config(folders, steps, method=method, batch=1, **{**SMALL[method], **kw})


# SANet with a GAN term (not in the paper) trains RAST's style discriminator
SANET_GAN = {"gan_weight": 5.0, "gan_scales": 1}


@pytest.mark.parametrize(
    ("method", "kw", "discs"),
    [
        ("sanet", {}, set()),
        ("sanet", SANET_GAN, {"disc_style"}),
        ("rast", {}, {"disc_style", "disc_content"}),
        ("rast", {"gan_weight": 0.0, "gan_scales": 3}, set()),  # no GAN term: no discriminators to train
    ],
)
def test_sanet_rast_killed_and_resumed_run_equals_uninterrupted(
    folders, tmp_path, random_encoder, tiny_crops, one_thread, method, kw, discs
):
    full = Trainer(
        small_config(folders, method, 2, **kw), tmp_path / "full.ckpt", device="cpu", encoder=random_encoder
    )
    full.cfg = small_config(folders, method, 1, **kw)
    full.run()  # checkpoint at step 1 ...
    shutil.copy(tmp_path / "full.ckpt", tmp_path / "part.ckpt")
    shutil.copy(tmp_path / "full.csv", tmp_path / "part.csv")
    full.cfg = small_config(folders, method, 2, **kw)
    full.run()  # ... and on, uninterrupted, to step 2

    resumed = Trainer(
        small_config(folders, method, 2, **kw), tmp_path / "part.ckpt", device="cpu", encoder=random_encoder
    )
    assert resumed.resume() and resumed.step == 1  # a fresh process continues the checkpoint
    resumed.run()
    assert set(resumed.models) == {"decoder", "transformer"} | discs
    assert set(resumed.optimizers) == {"optimizer"} | ({"optimizer_d"} if discs else set())
    for name, module in full.models.items():
        for (k, a), (_, b) in zip(
            module.state_dict().items(), resumed.models[name].state_dict().items(), strict=True
        ):
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=f"{name}.{k}")
    header, *rows = (tmp_path / "part.csv").read_text().splitlines()
    assert header.split(",") == log_columns(resumed.cfg) and [r.split(",")[0] for r in rows] == ["1", "2"]
    rows = [dict(zip(header.split(","), r.split(","), strict=True)) for r in rows]
    assert all((row["disc"] != "") == bool(discs) for row in rows if "disc" in row)
    assert all((row["gan"] != "") == bool(discs) for row in rows)


@pytest.mark.parametrize("method", ["sanet", "rast"])
def test_frozen_transformer_stays_and_unweighted_identity_passes_are_skipped(
    folders, tmp_path, random_encoder, tiny_crops, one_thread, method
):
    cfg = small_config(folders, method, 2, freeze="transformer", identity1_weight=0, identity2_weight=0)
    assert cfg.freeze == ["transformer"]
    trainer = Trainer(cfg, tmp_path / "run.ckpt", device="cpu", encoder=random_encoder)
    before = {
        r: {k: v.clone() for k, v in trainer.models[r].state_dict().items()} for r in METHOD_ROLES[method]
    }
    trainer.run()
    for name, value in trainer.transformer.state_dict().items():
        torch.testing.assert_close(value, before["transformer"][name], rtol=0, atol=0, msg=name)
    assert any(not torch.equal(v, before["decoder"][k]) for k, v in trainer.decoder.state_dict().items())
    trained = {id(p) for group in trainer.opt.param_groups for p in group["params"]}
    assert trained == {id(p) for p in trainer.decoder.parameters()}
    header, *rows = (tmp_path / "run.csv").read_text().splitlines()
    cells = [dict(zip(header.split(","), row.split(","), strict=True)) for row in rows]
    assert [c["step"] for c in cells] == ["1", "2"]
    assert all(c["identity1"] == c["identity2"] == "" and float(c["content"]) > 0 for c in cells)
    unfrozen = small_config(folders, method, 3, identity1_weight=0, identity2_weight=0)
    with pytest.raises(ParameterError, match=r"freeze=\['transformer'\]"):
        Trainer(unfrozen, tmp_path / "run.ckpt", device="cpu", encoder=random_encoder).resume()
    export_checkpoint(tmp_path / "run.ckpt", "tuned", root=tmp_path / "weights")
    card = (tmp_path / "weights" / "tuned.md").read_text()
    assert "| kept fixed | transformer: at its seeded initialisation" in card and "| identity1 | 0 |" in card
    assert "style_layers" not in card


def test_style_layer_weights_scale_their_layers_only(folders):
    c, s = two_images()
    a, b = {k: c for k in STYLE_LAYERS}, {k: s for k in STYLE_LAYERS}
    per_layer = {k: mean_std_loss(c, s) for k in STYLE_LAYERS}
    weighted = style_loss(a, b, weights={"relu1_1": 10.0, "relu5_1": 0.0})
    torch.testing.assert_close(
        weighted, 10 * per_layer["relu1_1"] + sum(per_layer[k] for k in STYLE_LAYERS[1:4])
    )
    plain, _ = sanet_losses(PixelEncoder(), MixTransform(), torch.nn.Identity(), c, s, identity=False)
    heavy, _ = sanet_losses(
        PixelEncoder(), MixTransform(), torch.nn.Identity(), c, s, identity=False, style_layers={"relu2_1": 3}
    )
    out = {k: 0.5 * c + 0.5 * s.flip(-1) for k in STYLE_LAYERS}
    torch.testing.assert_close(heavy["style"] - plain["style"], 2 * mean_std_loss(out["relu2_1"], s))
    assert float(heavy["content"]) == float(plain["content"])
    assert config(folders, 1, method="sanet", size=64, style_layers={"relu5_1": 2}).style_layers == {
        "relu5_1": 2
    }
    with pytest.raises(ValidationError, match="style layers"):
        config(folders, 1, style_layers={"relu5_1": 2})  # AdaIN's style loss stops at relu4_1
    with pytest.raises(ValidationError, match="style layers"):
        config(folders, 1, method="sanet", size=64, style_layers={"relu2_1": -1})


def test_freeze_keeps_something_to_train(folders):
    with pytest.raises(ValidationError, match="keep one of them"):
        config(folders, 1, method="sanet", size=64, freeze=["decoder", "transformer"])
    with pytest.raises(ValidationError, match="adain trains decoder"):
        config(folders, 1, freeze="transformer")


@pytest.mark.parametrize("method", ["sanet", "rast"])
def test_sanet_rast_export_loads_as_a_stylizer(
    folders, tmp_path, random_encoder, monkeypatch, tiny_crops, one_thread, method
):
    # the default weights have a skip decoder and a normalised transformer
    trainer = Trainer(
        small_config(folders, method, 1, decoder="skip", transformer="norm"),
        tmp_path / "run.ckpt",
        device="cpu",
        encoder=random_encoder,
    )
    ckpt = trainer.save()  # weights at initialisation are enough to check the round trip
    root = tmp_path / "weights"
    root.mkdir()
    (root / "catalog.json").write_text(
        (Path(__file__).parent / "data" / "empty" / "catalog.json").read_text()
    )
    name = get_method(method).default_weights
    assert name == {"sanet": "sanet-vgg16hed-norm", "rast": "rast-vgg16hed-norm"}[method]
    entry = export_checkpoint(ckpt, name, root=root)
    assert [(f["role"], f["filename"], f["arch"]) for f in entry["files"]] == [
        ("decoder", f"{name}.decoder.safetensors", "decoder-vgg16-bilinear-skip"),
        ("transformer", f"{name}.transformer.safetensors", "sanet-transformer-norm"),
    ]
    card = (root / f"{name}.md").read_text()
    assert "identity1 | 50 |" in card and ("style_diff | 2 |" in card) == (method == "rast")

    # the catalog's encoder is the real HED trunk; this test catalog has none, so hand over the random one
    monkeypatch.setattr("stylecore.methods.base.load_encoder", lambda *a, **k: random_encoder)
    stylizer = get_method(method).load(catalog=load_catalog(root), device="cpu")  # the default name
    assert stylizer.weights_name == name and set(stylizer.checksums) == {"decoder", "transformer"}
    assert stylizer.decoder.upsample == "bilinear"
    for role in ("decoder", "transformer"):
        for k, v in trainer.models[role].state_dict().items():
            torch.testing.assert_close(getattr(stylizer, role).state_dict()[k], v.half().float(), msg=k)
    out = stylizer.stylize(
        synthetic_image(48, 64)[None], stylizer.encode_style(synthetic_image(32, 32, seed=4))
    )
    assert out.shape == (1, 3, 48, 64) and torch.isfinite(out).all()

    # the exported pair is also a starting point: by either file, or by catalog name
    monkeypatch.setenv("STYLEPIPE_WEIGHTS", str(root))
    for source in (root / f"{name}.transformer.safetensors", name):
        again = Trainer(
            small_config(folders, "sanet", 1, init_from=source, decoder="skip", transformer="norm"),
            tmp_path / "b.ckpt",
            encoder=random_encoder,
        )
        for role in ("decoder", "transformer"):
            for k, v in trainer.models[role].state_dict().items():
                torch.testing.assert_close(again.models[role].state_dict()[k], v.half().float(), msg=k)
    with pytest.raises(WeightsError, match=r"NAME\.decoder"):
        Trainer(
            small_config(folders, "sanet", 1, init_from=root / "catalog.json"), tmp_path / "c.ckpt",
            encoder=random_encoder,
        )  # fmt: skip


def test_cli_train_reports_bad_settings_before_loading_anything(folders, tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    base = ["train", "sanet", "--content", str(folders[0]), "--style", str(folders[1]), "--steps", "1"]
    base += ["--out", str(tmp_path / "x.ckpt"), "--device", "cpu"]
    runner = CliRunner()
    result = runner.invoke(app, [*base, "--size", "72"])
    assert result.exit_code == 1 and "divides by 16" in result.output and "got --size=72" in result.output
    result = runner.invoke(app, [*base, "--set", "style_diff_weight=2"])
    assert (
        result.exit_code == 1
        and "style_diff_weight" in result.output
        and "not a loss term of sanet" in result.output
    )
    result = runner.invoke(app, [*base, "--set", "lr=1"])
    assert result.exit_code == 2 and "own options" in result.output
    assert not (tmp_path / "x.ckpt").exists()


def test_cli_train_names_its_options_in_library_errors(folders, tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    out = tmp_path / "x.ckpt"
    base = ["train", "adain", "--content", str(folders[0]), "--style", str(folders[1]), "--steps", "5"]
    base += ["--size", "32", "--out", str(out), "--device", "cpu", "--minutes", "0"]
    runner = CliRunner()
    assert runner.invoke(app, [*base, "--set", "upsample=nearest"]).exit_code == 0 and out.is_file()
    result = runner.invoke(app, [*base, "--resume"])
    assert result.exit_code == 1 and "(--set upsample=nearest)" in result.output
    result = runner.invoke(app, [*base[:-6], "--out", str(tmp_path / "y.ckpt"), "--init-from", "no-such"])
    assert result.exit_code == 1 and "--init-from=no-such: neither a file nor" in result.output
    result = runner.invoke(app, ["train", "adain", "--steps", "1", "--out", str(tmp_path / "z.ckpt")])
    assert result.exit_code == 2 and "--packed" in result.output


def test_run_stops_at_its_time_budget_and_calls_on_save(folders, tmp_path, random_encoder, one_thread):
    trainer = Trainer(config(folders, 100), tmp_path / "run.ckpt", device="cpu", encoder=random_encoder)
    saved: list[Path] = []
    path = trainer.run(max_seconds=0, on_save=saved.append)
    assert trainer.step == 0 and saved == [path] and path.is_file()


def test_on_save_follows_every_checkpoint(folders, tmp_path, random_encoder, one_thread):
    cfg = config(folders, 2, checkpoint_every_s=1e-9)  # a checkpoint after every step, then the final one
    trainer = Trainer(cfg, tmp_path / "run.ckpt", device="cpu", encoder=random_encoder)
    steps: list[int] = []
    trainer.run(on_save=lambda _: steps.append(trainer.step))
    assert steps == [1, 2, 2]


def test_cli_train_minutes_stops_with_a_checkpoint(folders, tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    out = tmp_path / "x.ckpt"
    args = ["train", "adain", "--content", str(folders[0]), "--style", str(folders[1]), "--steps", "50"]
    args += ["--size", "32", "--out", str(out), "--device", "cpu", "--minutes", "0"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "stopped at step 0" in result.output and out.is_file()


@needs_hed
def test_cli_train_saves_a_checkpoint_on_sigterm(folders, tmp_path):
    out = tmp_path / "x.ckpt"
    cmd = [sys.executable, "-m", "flows.cli", "train", "adain", "--content", str(folders[0])]
    cmd += ["--style", str(folders[1]), "--steps", "100000", "--size", "32", "--batch", "2"]
    cmd += ["--out", str(out), "--device", "cpu", "--checkpoint-minutes", "60"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    for line in proc.stdout:  # the first progress line: training is under way, no checkpoint yet
        lines.append(line)
        if line.startswith("step"):
            break
    assert not out.exists(), "".join(lines)
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, rest
    step = int(re.search(r"interrupted at step (\d+); checkpoint saved", rest).group(1))
    assert step >= 10 and torch.load(out, weights_only=True)["step"] == step


@pytest.mark.parametrize("native", [True, False])
def test_bf16_autocast_on_a_cpu_only_with_native_kernels(
    folders, tmp_path, random_encoder, monkeypatch, native
):
    monkeypatch.setattr("stylecore.train.loop.cpu_has_bf16", lambda: native)
    trainer = Trainer(config(folders, 1, amp=True), tmp_path / "r.ckpt", device="cpu", encoder=random_encoder)
    # emulated bf16 runs several times slower than fp32: the run says so and records fp32
    assert trainer.cfg.amp is native and bool(trainer.notes) is not native
    assert trainer.state_dict()["config"]["amp"] is native


def test_adain_style_term_on_another_loss_network(random_encoder):
    from stylecore.nets.decoder import VGGDecoder

    torch.manual_seed(0)
    other = VGGEncoder("vgg16-imagenet")  # random weights: a second, different network
    dec = VGGDecoder("vgg16")
    c, s = synthetic_image(32, 32, seed=1)[None], synthetic_image(32, 32, seed=2)[None]
    own = adain_losses(random_encoder, dec, c, s)
    mixed = adain_losses(random_encoder, dec, c, s, style_encoder=other)
    torch.testing.assert_close(mixed["content"], own["content"])  # the AdaIN target stays on the encoder
    assert not torch.isclose(mixed["style"], own["style"])
    mixed["style"].backward()
    assert all(p.grad is not None for p in dec.parameters())
    assert not any(p.grad is not None for p in other.parameters())


def test_gram_loss_sees_what_mean_and_std_do_not():
    torch.manual_seed(0)
    x = torch.randn(1, 2, 16, 16)
    a = (x - x.mean((2, 3), keepdim=True)) / x.std((2, 3), keepdim=True)  # two unrelated channels
    independent = {"relu1_1": a}
    correlated = {"relu1_1": torch.cat([a[:, :1], a[:, :1]], 1)}  # the same channel twice
    layers = ("relu1_1",)
    # equal channel means and stds: AdaIN's statistic cannot tell them apart, the Gram matrix can
    assert float(style_loss(independent, correlated, layers)) < 1e-3
    assert float(gram_loss(independent, correlated, layers)) > 0.1
    assert float(gram_loss(independent, independent, layers)) == 0.0


def test_gram_loss_is_gatys_and_the_metric_s(random_encoder):
    from stylecore.metrics import Metrics

    a, b = synthetic_image(32, 32, seed=1)[None], synthetic_image(32, 32, seed=2)[None]
    with torch.no_grad():
        fa, fb = random_encoder(a, STYLE_LAYERS), random_encoder(b, STYLE_LAYERS)
    torch.testing.assert_close(gram_loss(fa, fb), Metrics(random_encoder).gram_loss(a, b)[0])


def test_gram_term_of_adain_and_sanet_trains_the_decoder_only(random_encoder):
    torch.manual_seed(0)
    other = VGGEncoder("vgg16-imagenet")  # random weights: a second, different network
    c, s = synthetic_image(32, 32, seed=1)[None], synthetic_image(32, 32, seed=2)[None]
    for style_encoder in (None, other):
        dec, tr = VGGDecoder("vgg16"), Transform()
        adain_terms = adain_losses(random_encoder, dec, c, s, style_encoder=style_encoder)
        sanet_terms, _ = sanet_losses(
            random_encoder, tr, dec, c, s, identity=False, style_encoder=style_encoder
        )
        for terms in (adain_terms, sanet_terms):
            assert float(terms["gram"].detach()) > 0
            terms["gram"].backward()
        assert all(p.grad is not None for p in dec.parameters())
        assert not any(p.grad is not None for p in (*other.parameters(), *random_encoder.parameters()))


def test_style_encoder_is_a_setting_of_every_method(tmp_path):
    folders = {"content_dirs": [tmp_path], "style_dirs": [tmp_path]}
    for method in ("adain", "sanet", "rast"):
        cfg = TrainConfig(method=method, **folders, steps=1, style_encoder="vgg16-imagenet")
        assert cfg.style_encoder == cfg.other_style_encoder == "vgg16-imagenet"
        assert cfg.loss_weights()["gram"] == 0.0  # the Gram term is every method's, off by default
    # naming the encoder itself is no second network
    same = TrainConfig(method="rast", **folders, steps=1, style_encoder="vgg16-hed")
    assert same.other_style_encoder is None


def test_rast_style_and_gram_terms_on_another_loss_network(random_encoder):
    torch.manual_seed(0)
    other = VGGEncoder("vgg16-imagenet")  # random weights: a second, different network
    c, s = synthetic_image(32, 32, seed=1)[None], synthetic_image(32, 32, seed=2)[None]
    dec, tr = VGGDecoder("vgg16"), Transform()
    own, _ = rast_losses(random_encoder, tr, dec, c, s, identity=False)
    mixed, _ = rast_losses(random_encoder, tr, dec, c, s, identity=False, style_encoder=other)
    # RAST's restoration terms stay on the encoder; the style and Gram terms move
    for term in ("content_transitive", "style_transitive", "style_diff", "content"):
        torch.testing.assert_close(mixed[term], own[term])
    for term in ("style", "gram"):
        assert not torch.isclose(mixed[term], own[term])
        assert float(mixed[term].detach()) > 0
    (mixed["style"] + mixed["gram"]).backward()
    assert all(p.grad is not None for p in (*dec.parameters(), *tr.parameters()))
    assert not any(p.grad is not None for p in (*other.parameters(), *random_encoder.parameters()))


def test_sanet_style_term_on_another_loss_network(random_encoder):
    torch.manual_seed(0)
    other = VGGEncoder("vgg16-imagenet")  # random weights: a second, different network
    dec, tr = VGGDecoder("vgg16"), Transform()
    c, s = synthetic_image(32, 32, seed=1)[None], synthetic_image(32, 32, seed=2)[None]
    own, _ = sanet_losses(random_encoder, tr, dec, c, s, identity=False)
    mixed, _ = sanet_losses(random_encoder, tr, dec, c, s, identity=False, style_encoder=other)
    torch.testing.assert_close(mixed["content"], own["content"])
    assert not torch.isclose(mixed["style"], own["style"])
    mixed["style"].backward()
    assert all(p.grad is not None for p in dec.parameters())
