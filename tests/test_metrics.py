from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from stylecore.color import rgb_to_ycbcr, ycbcr_to_rgb
from stylecore.errors import ParameterError
from stylecore.metrics import (
    PALETTE_DIRECTIONS,
    PALETTE_QUANTILES,
    Metrics,
    StyleStats,
    checkerboard,
    covariance,
    f_s_matrix,
    grid_amplitude,
    palette_distance,
    palette_quantiles,
    psnr,
    reconstruction,
    retrieval,
    spectral_peaks,
    ssim,
    texture_ratio,
    timer,
)
from stylecore.ops import gram, mean_std
from tests.conftest import synthetic_image


@pytest.fixture(scope="module")
def metrics(random_encoder):
    return Metrics(random_encoder)


def test_distances_are_zero_for_identical_images(metrics):
    x = synthetic_image().unsqueeze(0)
    assert float(metrics.f_s(x, x)) == pytest.approx(0.0, abs=1e-4)
    assert float(metrics.f_c(x, x)) == pytest.approx(0.0, abs=1e-4)


def test_f_s_follows_the_seed_formula(metrics, random_encoder):
    a, b = synthetic_image(seed=1).unsqueeze(0), synthetic_image(seed=5).flip(1).unsqueeze(0)
    expected = 0.0
    fa, fb = random_encoder(a), random_encoder(b)
    for layer in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"):
        ma, sa = mean_std(fa[layer], eps=0.0)
        mb, sb = mean_std(fb[layer], eps=0.0)
        expected += float((ma - mb).norm() + (sa - sb).norm())
    assert float(metrics.f_s(a, b)) == pytest.approx(expected, rel=1e-5)
    assert float(metrics.f_s(a, metrics.style_stats(b))) == pytest.approx(expected, rel=1e-5)


def test_f_c_follows_the_seed_formula(metrics, random_encoder):
    a, b = synthetic_image(seed=1).unsqueeze(0), synthetic_image(seed=2).unsqueeze(0)
    fa, fb = random_encoder(a, ("relu4_1", "relu5_1")), random_encoder(b, ("relu4_1", "relu5_1"))
    expected = float((fa["relu4_1"] - fb["relu4_1"]).norm() + (fa["relu5_1"] - fb["relu5_1"]).norm())
    assert float(metrics.f_c(a, b)) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ParameterError, match="same size"):
        metrics.f_c(a, synthetic_image(32, 32).unsqueeze(0))


def test_covariance_is_the_channel_covariance_over_positions():
    feat = torch.randn(2, 3, 5, 7, dtype=torch.float64)
    for b in range(2):
        expected = torch.cov(feat[b].flatten(1), correction=0).float()
        torch.testing.assert_close(covariance(feat)[b], expected)
    # the mean is taken out: a brighter or tinted copy has the same texture
    torch.testing.assert_close(covariance(feat + 5.0), covariance(feat), rtol=1e-4, atol=1e-4)


def test_texture_distance_per_layer_and_its_ratio(metrics, random_encoder):
    a, b = synthetic_image(seed=1).unsqueeze(0), synthetic_image(seed=5).flip(1).unsqueeze(0)
    d = metrics.texture(a, b)
    assert d.shape == (1, 5) and bool((d > 0).all())
    assert float(metrics.texture(a, a).abs().max()) == pytest.approx(0.0, abs=1e-4)
    torch.testing.assert_close(metrics.texture(a, metrics.covariances(b)), d)
    fa, fb = random_encoder(a, ("relu3_1",)), random_encoder(b, ("relu3_1",))
    expected = (covariance(fa["relu3_1"]) - covariance(fb["relu3_1"])).norm()
    assert float(d[0, 2]) == pytest.approx(float(expected), rel=1e-4)

    refs = torch.tensor([[2.0, 4.0], [2.0, 4.0]])
    assert texture_ratio(refs, refs) == pytest.approx(1.0)
    assert texture_ratio(torch.zeros(2, 2), refs) == 0.0
    # each layer counts alike, whatever its scale: half the distance at one layer, the same at the other
    assert texture_ratio(
        torch.tensor([[1.0, 4000.0], [1.0, 4000.0]]), refs * torch.tensor([1.0, 1000.0])
    ) == (pytest.approx(0.75))
    with pytest.raises(ParameterError, match="same shape"):
        texture_ratio(refs, refs[:1])


def test_batched_values_are_per_image(metrics):
    a = torch.stack([synthetic_image(seed=1), synthetic_image(seed=2)])
    b = synthetic_image(seed=3).unsqueeze(0)
    together = metrics.f_s(a, b)
    assert together.shape == (2,)
    assert float(together[1]) == pytest.approx(float(metrics.f_s(a[1:], b)), rel=1e-5)


def test_gram_definition():
    f = torch.arange(12.0).view(1, 2, 2, 3)
    flat = f.view(2, 6)
    torch.testing.assert_close(gram(f)[0], flat @ flat.T / 6)


def test_ssim_matches_scikit_image():
    from skimage.metrics import structural_similarity

    a = synthetic_image(64, 64, seed=1).unsqueeze(0)
    b = (a + 0.05 * torch.randn_like(a, generator=None)).clamp(0, 1)
    ours = float(ssim(a[:, :1], b[:, :1]))
    ref = structural_similarity(
        a[0, 0].double().numpy(),
        b[0, 0].double().numpy(),
        data_range=1.0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    assert ours == pytest.approx(ref, abs=1e-5)
    assert float(ssim(a, a)) == pytest.approx(1.0, abs=1e-6)


def test_timer():
    with timer() as t:
        sum(range(1000))
    assert t["seconds"] >= 0.0


def test_checkerboard_finds_patterns_with_the_decoders_periods():
    clean = synthetic_image(160, 240, seed=3)  # smooth structure plus white noise: no periodic peak
    yy, xx = torch.meshgrid(torch.arange(160), torch.arange(240), indexing="ij")
    period2 = ((xx + yy) % 2 * 2 - 1).float()  # the pixel checkerboard of a 2x nearest upsampling
    tile = torch.rand(4, 4, generator=torch.Generator().manual_seed(0)) - 0.5
    period4 = tile.repeat(40, 60)  # any 4 x 4 pattern repeated, as two upsamplings leave it
    batch = torch.stack([clean, clean + 0.03 * period2, clean + 0.06 * period4])
    scores = checkerboard(batch.clamp(0, 1))
    assert scores[0] < 3, scores
    assert scores[1] > 20 and scores[2] > 20, scores
    # a shifted copy has the same spectrum magnitudes: the score does not depend on the phase
    assert checkerboard(torch.roll(batch[1:2], 1, dims=-1)) == pytest.approx(scores[1:2], rel=0.05)
    with pytest.raises(ParameterError, match="at least 72 px"):
        checkerboard(batch[:, :, :64, :])


def test_grid_amplitude_is_the_size_of_the_repeated_tile_in_grey_levels():
    smooth = synthetic_image(160, 240, seed=3)
    smooth = F.avg_pool2d(smooth[None], 9, stride=1, padding=4, count_include_pad=False)[0]
    yy, xx = torch.meshgrid(torch.arange(160), torch.arange(240), indexing="ij")
    period2 = ((xx + yy) % 2 * 2 - 1).float()  # RMS 1
    tile = torch.rand(4, 4, generator=torch.Generator().manual_seed(0)) - 0.5
    period4 = tile.repeat(40, 60) / (tile - tile.mean()).pow(2).mean().sqrt()  # RMS 1
    grey = smooth.mean(0, keepdim=True)  # no colour: the luminance is exactly this channel
    amps = grid_amplitude(torch.stack([grey, grey + period2 / 255, grey + 3 * period4 / 255]))
    assert amps[0] < 0.1, amps  # smooth content averages out
    assert amps[1] == pytest.approx(1.0, abs=0.1) and amps[2] == pytest.approx(3.0, abs=0.15), amps
    # the detection ratio calls even the faint period-2 pattern on smooth content a plain grid
    assert checkerboard(torch.stack([grey + period2 / 255]))[0] > 20
    with pytest.raises(ParameterError, match="at least 40 px"):
        grid_amplitude(grey[None, :, :39, :])  # one pixel short: the rule grid_loss uses too
    assert grid_amplitude(grey[None, :, :40, :]).shape == (1,)


def test_spectral_peaks_measure_a_stripe_pattern_in_grey_levels_and_ignore_texture():
    gen = torch.Generator().manual_seed(0)
    noise = torch.rand(1, 1, 128, 192, generator=gen) * 0.3 + 0.35  # texture with no orientation
    smooth = F.avg_pool2d(synthetic_image(128, 192, seed=2)[None], 9, stride=1, padding=4)
    xx = torch.arange(192).float()
    stripes = 3 * math.sqrt(2) * torch.sin(2 * math.pi * xx / 3.2) / 255  # 3 grey levels RMS
    grey = smooth.mean(1, keepdim=True)
    peaks = spectral_peaks(torch.cat([noise, grey, noise + stripes, grey + stripes]))
    assert peaks[0] < 0.05 and peaks[1] < 0.25, peaks  # under half a grey level RMS
    assert peaks[2].sqrt() == pytest.approx(3.0, rel=0.2) and peaks[3].sqrt() == pytest.approx(3.0, rel=0.2)
    # the same stripes slower than min_frequency (16 px) are content layout, not counted
    slow = 3 * math.sqrt(2) * torch.sin(2 * math.pi * xx / 32) / 255
    assert spectral_peaks(noise + slow) < 0.05


def test_peak_ratio_finds_a_hatch_in_its_period_band_and_not_in_noise():
    from benchmarks.hatch import band_measures
    from stylecore.metrics import frequency_radius, peak_ratio

    gen = torch.Generator().manual_seed(0)
    noise = torch.rand(1, 1, 128, 192, generator=gen) * 0.3 + 0.35
    xx = torch.arange(192).float()
    stripes = 3 * math.sqrt(2) * torch.sin(2 * math.pi * xx / 3.2) / 255  # 3 grey levels RMS
    ratio = peak_ratio(torch.cat([noise, noise + stripes]))
    radius = frequency_radius(128, 192)
    assert radius[0, 60] == pytest.approx(60 / 192) and radius[64, 0] == pytest.approx(0.5)
    band = (radius >= 1 / 3.5) & (radius <= 1 / 2.9)
    assert ratio[0][band].max() < 20 < 200 < ratio[1][band].max()
    assert ratio[1][~band].max() < 20  # the stripe is in its band only
    quiet, hatched = (band_measures(x.expand(3, -1, -1), 2.9, 3.5) for x in (noise[0], (noise + stripes)[0]))
    assert quiet[1] < 0.3 and hatched[1] == pytest.approx(3.0, rel=0.2)
    assert band_measures((noise + stripes)[0].expand(3, -1, -1), 3.6, 5.0)[1] < 0.3  # another band


def test_rgb_to_lab_matches_scikit_image():
    from skimage.color import rgb2lab

    from stylecore.color import rgb_to_lab

    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x[0, :, 0, :3] = torch.tensor([[0.0, 1.0, 0.02]] * 3)  # black, white, the linear segment of sRGB
    ref = torch.from_numpy(rgb2lab(x[0].permute(1, 2, 0).numpy())).permute(2, 0, 1)
    torch.testing.assert_close(rgb_to_lab(x)[0], ref, atol=0.02, rtol=0)


def _hue_rotated(img: torch.Tensor, degrees: float) -> torch.Tensor:
    """The same luma with the chroma (Cb, Cr) turned by ``degrees``."""
    ycc = rgb_to_ycbcr(img)
    t = math.radians(degrees)
    cb, cr = ycc[:, 1], ycc[:, 2]
    turned = [ycc[:, 0], math.cos(t) * cb - math.sin(t) * cr, math.sin(t) * cb + math.cos(t) * cr]
    return ycbcr_to_rgb(torch.stack(turned, dim=1)).clamp(0, 1)


def test_palette_distance_is_zero_to_itself_symmetric_and_large_for_other_hues():
    texture = synthetic_image(96, 128, seed=4)[None]
    img = texture * 0.3 + 0.7 * torch.tensor([0.9, 0.5, 0.1]).view(1, 3, 1, 1)  # orange ...
    green = torch.tensor([0.2, 0.7, 0.3]).view(1, 3, 1, 1)
    img[..., 64:] = texture[..., 64:] * 0.3 + 0.7 * green  # ... and green
    assert float(palette_distance(img, img)[0]) == pytest.approx(0.0, abs=1e-6)
    half = F.interpolate(img, scale_factor=0.5, mode="bilinear", antialias=True)  # other size, same colours
    same = float(palette_distance(img, half)[0])
    other = torch.cat([_hue_rotated(img, 120), _hue_rotated(img, 180)])
    far = palette_distance(other, img)
    assert same < 1.5, same
    assert float(far.min()) > 10 * same and float(far.min()) > 10, far
    torch.testing.assert_close(palette_distance(img.expand(2, -1, -1, -1), other), far)  # symmetric
    # precomputed tables give the same, one image is compared with each of the other side's
    tables = palette_quantiles(other)
    assert tables.shape == (2, PALETTE_DIRECTIONS, PALETTE_QUANTILES)
    torch.testing.assert_close(palette_distance(palette_quantiles(img), tables), far)
    with pytest.raises(ParameterError, match="pairs 3 images with 2"):
        palette_distance(img.expand(3, -1, -1, -1), other)


def test_palette_distance_of_two_flat_colours_is_their_a_b_distance_times_the_mean_projection():
    from stylecore.color import rgb_to_lab

    red, teal = torch.tensor([0.8, 0.2, 0.2]), torch.tensor([0.1, 0.6, 0.6])
    a, b = red.view(1, 3, 1, 1).expand(1, 3, 8, 8), teal.view(1, 3, 1, 1).expand(1, 3, 5, 7)
    delta = (rgb_to_lab(a.double())[0, 1:, 0, 0] - rgb_to_lab(b.double())[0, 1:, 0, 0]).norm()
    # |cos| over directions evenly spread over the half circle averages 2 / pi
    assert float(palette_distance(a, b)[0]) == pytest.approx(float(delta) * 2 / math.pi, rel=2e-3)


def test_palette_distance_separates_a_two_colour_palette_from_one_with_its_mean_and_covariance():
    blue, yellow = torch.tensor([0.3, 0.35, 0.6]), torch.tensor([0.7, 0.65, 0.3])
    mean, half = (blue + yellow) / 2, (yellow - blue) / 2
    two = torch.stack([blue, yellow]).repeat(2048, 1)  # half the pixels each colour
    u = torch.linspace(-1, 1, 4096)[:, None] * math.sqrt(3)  # uniform: the same variance along the axis
    spread = mean + u * half
    for stat in (lambda p: p.mean(0), lambda p: torch.cov(p.T)):  # RGB mean + covariance cannot tell
        torch.testing.assert_close(stat(two), stat(spread), atol=2e-3, rtol=0)
    as_image = [p.T.reshape(1, 3, 64, 64) for p in (two, spread)]
    assert float(palette_distance(*as_image)[0]) > 5


def test_retrieval_counts_outputs_whose_nearest_style_is_their_own():
    table = torch.tensor([[0.0, 1.0], [2.0, 1.0], [0.0, 3.0]])
    assert retrieval(table, [0, 1, 1]) == pytest.approx(2 / 3)
    with pytest.raises(ParameterError, match="one style per output"):
        retrieval(table, [0, 1])


def _coloured_set(k: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """k flat-coloured textured styles, and contents tinted with each style's colours: (styles,
    outputs, each output's style)."""
    colours = torch.tensor([[0.9, 0.2, 0.1], [0.1, 0.3, 0.9], [0.2, 0.8, 0.2], [0.9, 0.85, 0.1]])[:k]
    texture = synthetic_image(64, 64, seed=7).mean(0, keepdim=True)
    styles = colours.view(k, 3, 1, 1) * (0.6 + 0.4 * texture)
    contents = torch.stack([synthetic_image(64, 64, seed=20 + i) for i in range(3)])
    # (contents, styles, 3, H, W)
    outputs = 0.3 * contents[:, None].mean(2, keepdim=True) + 0.7 * styles[None]
    own = torch.arange(k).repeat(3)
    return styles, outputs.flatten(0, 1), own


def test_style_retrieval_by_palette_and_by_f_s_finds_the_own_style_of_coloured_outputs(metrics):
    styles, outputs, own = _coloured_set()
    by_palette = torch.stack([palette_distance(outputs, s[None]) for s in styles], dim=1)
    assert retrieval(by_palette, own) == 1.0
    shuffled = own[torch.randperm(len(own), generator=torch.Generator().manual_seed(0))]
    assert retrieval(by_palette, shuffled) < 0.5
    each = StyleStats.cat([metrics.style_stats(s[None]) for s in styles])  # one by one, as sizes may differ
    by_f_s = f_s_matrix(metrics.style_stats(outputs), each)
    assert by_f_s.shape == (len(outputs), len(styles))
    assert retrieval(by_f_s, own) == 1.0 and retrieval(by_f_s, shuffled) < 0.5
    # each entry is the f_s of that output to that style
    torch.testing.assert_close(by_f_s[:, 2], metrics.f_s(outputs, styles[2:3]), rtol=1e-5, atol=1e-3)


def test_psnr_of_known_noise_and_the_reconstruction_test():
    photos = synthetic_image(64, 96, seed=2)[None].expand(2, -1, -1, -1) * 0.8 + 0.1
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(96), indexing="ij")
    noise = 0.05 * ((xx + yy) % 2 * 2 - 1).float()  # +-0.05 everywhere: MSE 0.0025
    assert float(psnr(photos + noise, photos)[0]) == pytest.approx(10 * math.log10(1 / 0.0025), abs=1e-4)
    assert math.isinf(float(psnr(photos, photos)[0]))

    seen = []

    def noisy(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        seen.append(style)
        return content + noise

    s, p = reconstruction(noisy, photos)
    assert seen[0] is photos  # the photo is its own style
    assert p.shape == (2,) and float(p[0]) == pytest.approx(26.0206, abs=1e-3)
    assert 0.3 < float(s[0]) < 0.99
    gen = torch.Generator().manual_seed(0)
    lost, _ = reconstruction(lambda c, s: torch.rand(c.shape, generator=gen), photos)  # its own texture
    assert float(lost[0]) < 0.1, lost
    with pytest.raises(ParameterError, match="came back"):
        reconstruction(lambda c, s: c[..., :32, :], photos)
