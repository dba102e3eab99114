"""Every registered method through the same tests (real classes, random weights, synthetic images)."""

from __future__ import annotations

import pytest
import torch

from stylecore.color import colour_moments, match_palette, mix_moments, rgb_to_ycbcr
from stylecore.errors import ParameterError, UnknownNameError
from stylecore.methods import get_method, list_methods
from stylecore.methods.base import pad_for_networks
from stylecore.nets.transformer import SANetBlock
from stylecore.ops import mean_variance_norm
from tests.conftest import synthetic_image

FAST = {"gatys": {"steps": 3}, "photoreal": {"steps": 3, "work_size": 64}}  # short optimisations


def stylizer(name, encoder, seed=0):
    return get_method(name).random(encoder, seed=seed)


def test_registry_lists_the_methods():
    assert {"gatys", "adain", "sanet", "rast"} <= set(list_methods())
    with pytest.raises(UnknownNameError, match="Did you mean 'adain'"):
        get_method("adin")


@pytest.mark.parametrize("name", list_methods())
def test_shape_range_and_determinism(name, random_encoder, content_batch, style_images):
    s = stylizer(name, random_encoder)
    code = s.encode_style(style_images[0])
    params = FAST.get(name, {})
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    out1 = s.stylize(content_batch, code, params=params, generator=g1)
    out2 = s.stylize(content_batch, code, params=params, generator=g2)
    assert out1.shape == content_batch.shape
    assert out1.dtype == torch.float32
    assert float(out1.min()) >= 0.0 and float(out1.max()) <= 1.0
    torch.testing.assert_close(out1, out2, rtol=0, atol=0)


@pytest.mark.parametrize("name", list_methods())
def test_batch_equals_one_by_one(name, random_encoder, content_batch, style_images):
    s = stylizer(name, random_encoder)
    code = s.encode_style(style_images[1])
    params = FAST.get(name, {})
    batched = s.stylize(content_batch, code, params=params)
    singles = torch.cat([s.stylize(content_batch[i], code, params=params) for i in range(len(content_batch))])
    torch.testing.assert_close(batched, singles, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", list_methods())
def test_odd_sizes_keep_the_input_size(name, random_encoder, style_images):
    s = stylizer(name, random_encoder)
    code = s.encode_style(style_images[0])
    for h, w in ((37, 53), (16, 19)):  # (16, 19): the smallest side allowed, less than the margin
        out = s.stylize(synthetic_image(h, w), code, params=FAST.get(name, {}))
        assert out.shape == (1, 3, h, w) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", list_methods())
def test_bad_parameters_are_refused_by_name(name, random_encoder, content_batch, style_images):
    s = stylizer(name, random_encoder)
    code = s.encode_style(style_images[0])
    with pytest.raises(ParameterError, match="alpha"):
        s.stylize(content_batch, code, params={"alpha": 1.5})
    with pytest.raises(ParameterError, match="no_such_knob"):
        s.stylize(content_batch, code, params={"no_such_knob": 1})
    with pytest.raises(ParameterError, match=r"\(3, H, W\)"):
        s.stylize(torch.rand(2, 4, 32, 32), code)


@pytest.mark.parametrize("name", list_methods())
def test_preserve_color_keeps_content_chroma(name, random_encoder, content_batch, style_images):
    s = stylizer(name, random_encoder)
    out = s.stylize(
        content_batch, s.encode_style(style_images[0]), params={**FAST.get(name, {}), "preserve_color": True}
    )
    chroma_out, chroma_in = rgb_to_ycbcr(out)[:, 1:], rgb_to_ycbcr(content_batch)[:, 1:]
    # equal up to clipping to [0, 1] at saturated pixels
    assert (chroma_out - chroma_in).abs().mean() < 0.02


def test_match_palette_gives_the_target_colour_mean_and_covariance():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 30, 40, generator=g) * 0.5 + 0.25
    target = colour_moments(torch.rand(1, 3, 20, 20, generator=g) ** 2)
    mapped = match_palette(image, target)
    assert torch.allclose(colour_moments(mapped), target.expand(2, -1, -1), atol=1e-4)
    assert torch.allclose(
        match_palette(image, colour_moments(image)), image, atol=1e-6
    )  # own moments: identity
    # the moments of a 50/50 mixture are those of the two images side by side
    a, b = image[:1], torch.rand(1, 3, 30, 40, generator=g)
    mixed = mix_moments(torch.cat([colour_moments(a), colour_moments(b)]), torch.tensor([0.5, 0.5]))
    assert torch.allclose(mixed, colour_moments(torch.cat([a, b], dim=3))[0], atol=1e-5)


@pytest.mark.parametrize("name", list_methods())
def test_match_palette_takes_the_styles_colours(name, random_encoder, content_batch, style_images):
    s = stylizer(name, random_encoder)
    code = s.encode_style(style_images[0])
    params = {**FAST.get(name, {}), "match_palette": True}
    out = s.stylize(content_batch, code, params=params)
    target = colour_moments(style_images[0][None])
    # equal up to clipping to [0, 1]
    assert (colour_moments(out)[:, :, 3] - target[:, :, 3]).abs().max() < 0.03
    with pytest.raises(ParameterError, match="pick one"):
        s.stylize(content_batch, code, params={**params, "preserve_color": True})


@pytest.mark.parametrize("name", ["adain", "sanet", "rast"])
def test_match_palette_follows_alpha_weights_and_masks(name, random_encoder, content_batch, style_images):
    s = stylizer(name, random_encoder)
    a, b = (s.encode_style(im) for im in style_images)
    on = {"match_palette": True}
    # alpha 0: the output's own moments are the target, so nothing changes
    plain = s.stylize_each(content_batch, [a, b], alphas=[0.0, 1.0])
    mapped = s.stylize_each(content_batch, [a, b], alphas=[0.0, 1.0], params=on)
    assert torch.allclose(mapped[0], plain[0], atol=1e-5) and not torch.allclose(mapped[1], plain[1])
    # mixing: the target is the mixture of the two palettes
    mix = s.stylize(content_batch, [a, b], style_weights=[0.5, 0.5], params=on)
    target = mix_moments(torch.cat([a.palette, b.palette]), torch.tensor([0.5, 0.5]))
    assert (colour_moments(mix)[:, :, 3] - target[:, 3]).abs().max() < 0.03
    # masks: each half takes its own style's mean colour
    x = synthetic_image(64, 128).unsqueeze(0)
    left = torch.zeros(1, 1, 64, 128)
    left[..., :64] = 1.0
    out = s.stylize(x, [a, b], masks=torch.cat([left, 1 - left], 1), params=on)
    for half, code in ((out[..., :64], a), (out[..., 64:], b)):
        assert (colour_moments(half)[:, :, 3] - code.palette[:, :, 3]).abs().max() < 0.03


@pytest.mark.parametrize("name", list_methods())
def test_interpolation_with_one_hot_weights_equals_single_style(
    name, random_encoder, content_batch, style_images
):
    s = stylizer(name, random_encoder)
    a, b = (s.encode_style(im) for im in style_images)
    params = FAST.get(name, {})
    mixed = s.stylize(content_batch, [a, b], style_weights=[3.0, 0.0], params=params)
    torch.testing.assert_close(mixed, s.stylize(content_batch, a, params=params), rtol=1e-5, atol=1e-5)
    half = s.stylize(content_batch, [a, b], style_weights=[1, 1], params=params)
    assert not torch.allclose(half, mixed)


def test_two_styles_need_weights_or_masks(random_encoder, content_batch, style_images):
    s = stylizer("adain", random_encoder)
    codes = [s.encode_style(im) for im in style_images]
    with pytest.raises(ParameterError, match="style_weights"):
        s.stylize(content_batch, codes)
    with pytest.raises(ParameterError, match="non-negative"):
        s.stylize(content_batch, codes, style_weights=[1, -1])


def test_style_codes_are_method_specific(random_encoder, content_batch, style_images):
    adain, sanet = stylizer("adain", random_encoder), stylizer("sanet", random_encoder)
    with pytest.raises(ParameterError, match="encode it with this stylizer"):
        sanet.stylize(content_batch, adain.encode_style(style_images[0]))


@pytest.mark.parametrize("name", ["adain", "sanet", "rast"])
def test_alpha_zero_decodes_the_content_features(name, random_encoder, content_batch, style_images):
    s = stylizer(name, random_encoder)
    out = s.stylize(content_batch[:1, :, :32, :48], s.encode_style(style_images[0]), params={"alpha": 0.0})
    # the networks see the content with its mirrored margin (pad_for_networks), then it is cropped off
    x, m = pad_for_networks(content_batch[:1, :, :32, :48], s.multiple, s.margin)
    assert m == 31  # the margin is clipped below the 32 px side
    expected = s.decoder(random_encoder.encode(x, "relu4_1")).clamp(0, 1)[..., m : m + 32, m : m + 48]
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("name", ["adain", "sanet", "rast"])
def test_masks_place_each_style_in_its_region(name, random_encoder, style_images):
    s = stylizer(name, random_encoder)
    a, b = (s.encode_style(im) for im in style_images)
    x = synthetic_image(64, 128).unsqueeze(0)
    left = torch.zeros(1, 1, 64, 128)
    left[..., :64] = 1.0
    masked = s.stylize(x, [a, b], masks=torch.cat([left, 1 - left], 1))
    only_a, only_b = s.stylize(x, a), s.stylize(x, b)
    # away from the seam (decoder receptive field), each half follows its own style
    err_left_a = (masked[..., :40] - only_a[..., :40]).abs().mean()
    err_left_b = (masked[..., :40] - only_b[..., :40]).abs().mean()
    err_right_b = (masked[..., 88:] - only_b[..., 88:]).abs().mean()
    err_right_a = (masked[..., 88:] - only_a[..., 88:]).abs().mean()
    assert err_left_a < err_left_b and err_right_b < err_right_a


def test_mask_shape_is_checked(random_encoder, content_batch, style_images):
    s = stylizer("adain", random_encoder)
    codes = [s.encode_style(im) for im in style_images]
    with pytest.raises(ParameterError, match="masks must be shaped"):
        s.stylize(content_batch, codes, masks=torch.ones(1, 3, 40, 56))
    with pytest.raises(ParameterError, match="gatys does not support spatial masks"):
        g = stylizer("gatys", random_encoder)
        g.stylize(content_batch, [g.encode_style(im) for im in style_images], masks=torch.ones(1, 2, 40, 56))


def test_sanet_attention_matches_the_upstream_formula():
    """Chunked SDPA attention == upstream's explicit bmm/softmax, including across chunk borders."""
    import stylecore.nets.transformer as sanet_mod

    torch.manual_seed(0)
    block = SANetBlock(8)
    content, style = torch.randn(2, 8, 9, 11), torch.randn(1, 8, 5, 6)
    F_ = block.f(mean_variance_norm(content)).flatten(2).permute(0, 2, 1)
    G = block.g(mean_variance_norm(style)).flatten(2).expand(2, -1, -1)
    H = block.h(style).flatten(2).expand(2, -1, -1)
    S = torch.softmax(torch.bmm(F_, G), dim=-1)
    ref = block.out_conv(torch.bmm(H, S.permute(0, 2, 1)).view(2, 8, 9, 11)) + content
    old = sanet_mod.QUERY_CHUNK
    sanet_mod.QUERY_CHUNK = 7  # force several chunks
    try:
        torch.testing.assert_close(block(content, style), ref, rtol=1e-4, atol=1e-5)
    finally:
        sanet_mod.QUERY_CHUNK = old


def test_gatys_reduces_the_style_loss(random_encoder, style_images):
    from stylecore.metrics import Metrics

    g = stylizer("gatys", random_encoder)
    x = synthetic_image(48, 48, seed=9).unsqueeze(0)
    style = style_images[0].unsqueeze(0)
    out = g.stylize(x, g.encode_style(style), params={"steps": 20, "optimizer": "adam", "lr": 0.05})
    m = Metrics(random_encoder)
    assert float(m.gram_loss(out, style)) < 0.7 * float(m.gram_loss(x, style))


@pytest.mark.parametrize("name", list_methods())
def test_bf16_precision_stays_close_to_fp32(name, random_encoder, content_batch, style_images):
    s = stylizer(name, random_encoder)
    code = s.encode_style(style_images[0])
    params = FAST.get(name, {})
    fp32 = s.stylize(content_batch, code, params=params)
    bf16 = s.stylize(content_batch, code, params={**params, "precision": "bf16"})
    assert bf16.dtype == torch.float32
    assert (bf16 - fp32).abs().mean() < 0.05
