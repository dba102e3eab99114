"""Quality metrics: on the one encoder the seed's f_s and f_c, the Gram loss and a texture distance
(:meth:`Metrics.texture`, :func:`texture_ratio`); SSIM and PSNR; a
palette distance (:func:`palette_distance`), style retrieval (:func:`retrieval`) and the reconstruction
test (:func:`reconstruction`); a grid-artefact score (:func:`checkerboard`); and a timer.

    f_s(I1, I2) = sum_i ||mean(phi_i(I1)) - mean(phi_i(I2))||_2 + ||std(phi_i(I1)) - std(phi_i(I2))||_2
                  over relu1_1 .. relu5_1
    f_c(I1, I2) = ||phi_4_1(I1) - phi_4_1(I2)||_2 + ||phi_5_1(I1) - phi_5_1(I2)||_2

    texture_l(I1, I2) = ||cov(phi_l(I1)) - cov(phi_l(I2))||_F   for each layer l of relu1_1 .. relu5_1

where cov is the channel covariance over positions. f_s sees each channel alone; the covariance sees
which channels fire together, i.e. the strokes' shapes, with the mean (the palette and the brightness)
taken out. :func:`texture_ratio` makes it one number per system, each layer counting alike.

Values depend on the encoder (its activation scale), so every report names it. f_c compares
activations position by position, so both images must have the same size.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from stylecore.color import luminance, rgb_to_lab
from stylecore.errors import ParameterError
from stylecore.nets.encoder import STYLE_LAYERS, VGGEncoder
from stylecore.ops import gram, mean_std

CONTENT_LAYERS = ("relu4_1", "relu5_1")


@dataclass(frozen=True)
class StyleStats:
    """Per-layer channel means and stds of an image: all f_s needs, so a style is encoded once."""

    means: tuple[torch.Tensor, ...]
    stds: tuple[torch.Tensor, ...]

    @staticmethod
    def cat(stats: Sequence[StyleStats]) -> StyleStats:
        """One batch of the images of several (images of different sizes are encoded one by one)."""
        return StyleStats(
            tuple(torch.cat(m) for m in zip(*(s.means for s in stats), strict=True)),
            tuple(torch.cat(m) for m in zip(*(s.stds for s in stats), strict=True)),
        )


def f_s_matrix(a: StyleStats, b: StyleStats) -> torch.Tensor:
    """f_s of every image of ``a`` to every image of ``b``, shape (len(a), len(b)): what style retrieval
    by f_s ranks."""
    total = torch.zeros(a.means[0].shape[0], b.means[0].shape[0], device=a.means[0].device)
    for ma, sa, mb, sb in zip(a.means, a.stds, b.means, b.stds, strict=True):
        # the direct form: cdist's matrix-product shortcut loses digits on large, close vectors
        mode = "donot_use_mm_for_euclid_dist"
        total += torch.cdist(ma, mb.to(ma), compute_mode=mode) + torch.cdist(sa, sb.to(sa), compute_mode=mode)
    return total.cpu()


def covariance(feat: torch.Tensor) -> torch.Tensor:
    """The channel covariance over positions of (B, C, H, W) features, (B, C, C) in fp32."""
    flat = feat.float().flatten(2)
    flat = flat - flat.mean(dim=2, keepdim=True)
    return flat @ flat.transpose(1, 2) / flat.shape[2]


def texture_ratio(distances: torch.Tensor, references: torch.Tensor) -> float:
    """One texture figure for a set of outputs: per layer, the summed texture distances of the outputs
    to their styles over those of the untouched contents to the same styles (both (N, layers), from
    :meth:`Metrics.texture`), averaged over the layers. 1 = no nearer than the photo, 0 = the
    painting's texture at every layer; each layer counts alike whatever its activation scale."""
    if distances.shape != references.shape or distances.ndim != 2:
        raise ParameterError(
            f"texture_ratio takes two (N, layers) tables of the same shape, got {tuple(distances.shape)} "
            f"and {tuple(references.shape)}"
        )
    return float((distances.sum(0) / references.sum(0)).mean())


class Metrics:
    """Computes f_s, f_c, the Gram loss and the texture distance with one fixed encoder (batched: one
    value per image)."""

    def __init__(self, encoder: VGGEncoder) -> None:
        self.encoder = encoder

    @torch.no_grad()
    def style_stats(self, images: torch.Tensor) -> StyleStats:
        feats = self.encoder(images.to(self._device), STYLE_LAYERS)
        stats = [mean_std(feats[layer], eps=0.0) for layer in STYLE_LAYERS]
        return StyleStats(tuple(m.flatten(1) for m, _ in stats), tuple(s.flatten(1) for _, s in stats))

    def f_s(self, images: torch.Tensor, reference: torch.Tensor | StyleStats) -> torch.Tensor:
        """Style distance of each image to the reference image(s) or precomputed stats, shape (B,)."""
        a = self.style_stats(images)
        b = reference if isinstance(reference, StyleStats) else self.style_stats(reference)
        total = torch.zeros(a.means[0].shape[0], device=a.means[0].device)
        for ma, sa, mb, sb in zip(a.means, a.stds, b.means, b.stds, strict=True):
            total += (ma - mb).norm(dim=1) + (sa - sb).norm(dim=1)
        return total.cpu()

    @torch.no_grad()
    def f_c(self, images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Content distance of each image to the same-sized reference image(s), shape (B,)."""
        if images.shape[-2:] != reference.shape[-2:]:
            raise ParameterError(
                f"f_c compares images of the same size, got {tuple(images.shape[-2:])} and "
                f"{tuple(reference.shape[-2:])}"
            )
        fa = self.encoder(images.to(self._device), CONTENT_LAYERS)
        fb = self.encoder(reference.to(self._device), CONTENT_LAYERS)
        return sum((fa[k] - fb[k]).flatten(1).norm(dim=1) for k in CONTENT_LAYERS).cpu()

    @torch.no_grad()
    def content_features(self, contents: torch.Tensor) -> dict[str, torch.Tensor]:
        """What f_c needs of the content images (cacheable: a content paired with many styles)."""
        return {k: v.float() for k, v in self.encoder(contents.to(self._device), CONTENT_LAYERS).items()}

    @torch.no_grad()
    def scores(
        self,
        outputs: torch.Tensor,
        contents: torch.Tensor | dict[str, torch.Tensor],
        style: torch.Tensor | StyleStats,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(f_c(outputs, contents), f_s(outputs, style))`` with one encoder pass per image (B,) each.

        ``contents`` may be images or their :meth:`content_features`. Under a bf16 autocast the
        convolutions run in bf16 and the statistics in fp32.
        """
        if isinstance(contents, torch.Tensor) and outputs.shape[-2:] != contents.shape[-2:]:
            raise ParameterError("f_c compares images of the same size")
        fc = contents if isinstance(contents, dict) else self.content_features(contents)
        if fc["relu4_1"].shape[-2:] != _feature_size(outputs.shape[-2:], 4):
            raise ParameterError("f_c compares images of the same size")
        fo = {k: v.float() for k, v in self.encoder(outputs.to(self._device), STYLE_LAYERS).items()}
        f_c = sum((fo[k] - fc[k]).flatten(1).norm(dim=1) for k in CONTENT_LAYERS)
        ref = style if isinstance(style, StyleStats) else self.style_stats(style)
        f_s = torch.zeros(outputs.shape[0], device=fo["relu1_1"].device)
        for layer, mb, sb in zip(STYLE_LAYERS, ref.means, ref.stds, strict=True):
            ma, sa = mean_std(fo[layer], eps=0.0)
            f_s += (ma.flatten(1) - mb).norm(dim=1) + (sa.flatten(1) - sb).norm(dim=1)
        return f_c.cpu(), f_s.cpu()

    @torch.no_grad()
    def gram_loss(self, images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Sum over relu1_1..relu5_1 of the mean squared Gram difference, shape (B,)."""
        fa = self.encoder(images.to(self._device), STYLE_LAYERS)
        fb = self.encoder(reference.to(self._device), STYLE_LAYERS)
        return sum((gram(fa[k]) - gram(fb[k])).pow(2).mean(dim=(1, 2)) for k in STYLE_LAYERS).cpu()

    @torch.no_grad()
    def covariances(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Each layer's channel covariance (relu1_1..relu5_1), (B, C, C) each: all the texture
        distance needs of an image, so a style is encoded once."""
        feats = self.encoder(images.to(self._device), STYLE_LAYERS)
        return tuple(covariance(feats[k]) for k in STYLE_LAYERS)

    def texture(
        self, images: torch.Tensor, reference: torch.Tensor | tuple[torch.Tensor, ...]
    ) -> torch.Tensor:
        """Texture distance of each image to the reference image(s) or precomputed covariances, per
        layer: shape (B, 5), relu1_1..relu5_1."""
        a = self.covariances(images)
        b = reference if isinstance(reference, tuple) else self.covariances(reference)
        return torch.stack([(x - y.to(x)).flatten(1).norm(dim=1) for x, y in zip(a, b, strict=True)], 1).cpu()

    @property
    def _device(self) -> torch.device:
        return next(self.encoder.parameters()).device


def _feature_size(size: tuple[int, int] | torch.Size, block: int) -> tuple[int, int]:
    """Spatial size after ``block - 1`` ceil-mode 2x2 poolings (the encoder's block ``block``)."""
    h, w = size
    for _ in range(block - 1):
        h, w = -(-h // 2), -(-w // 2)
    return h, w


def _gaussian_window(size: int, sigma: float, device, dtype) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).view(1, 1, 1, size)


def ssim(a: torch.Tensor, b: torch.Tensor, *, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM on luminance (Wang et al. 2004; Gaussian 11x11, sigma 1.5, data range 1), shape (B,).

    RGB (B, 3, H, W) inputs are converted to BT.601 luma; (B, 1, H, W) inputs are used as they are.
    """
    if a.shape != b.shape:
        raise ParameterError(
            f"ssim compares images of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    a = luminance(a) if a.shape[1] == 3 else a
    b = luminance(b) if b.shape[1] == 3 else b
    a, b = a.double(), b.double()
    win = _gaussian_window(min(window, *a.shape[-2:]), sigma, a.device, a.dtype)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(x, win), win.transpose(2, 3))

    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.mean(dim=(1, 2, 3)).float()


def psnr(a: torch.Tensor, b: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB over all channels (RGB: colours count too), shape (B,)."""
    if a.shape != b.shape:
        raise ParameterError(
            f"psnr compares images of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    mse = (a.double() - b.double()).pow(2).flatten(1).mean(dim=1)
    return (10 * torch.log10(data_range**2 / mse)).float()  # identical images: inf


def reconstruction(
    stylize: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], photos: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reconstruction test: each photo stylized with itself as the style (``stylize(content, style)``);
    ``(SSIM, PSNR)`` of the outputs to the photos, shape (B,) each.

    A method whose decoder can invert its encoder's features gives the photo back (SSIM near 1); one
    that draws its own texture whatever the input cannot, and no style loss makes up for that.
    """
    out = stylize(photos, photos)
    if out.shape != photos.shape:
        raise ParameterError(
            f"the reconstruction of {tuple(photos.shape)} photos came back {tuple(out.shape)}"
        )
    out = out.to(photos)
    return ssim(out, photos), psnr(out, photos)


PALETTE_DIRECTIONS = 32  # evenly spaced over the half circle of the a*b* plane: deterministic, no seed
PALETTE_QUANTILES = 256


def palette_quantiles(
    images: torch.Tensor, *, directions: int = PALETTE_DIRECTIONS, quantiles: int = PALETTE_QUANTILES
) -> torch.Tensor:
    """What :func:`palette_distance` compares of each image, shape (B, directions, quantiles): the
    quantiles of its pixels' CIE a*b* projected on lines evenly spread over the half circle
    (cacheable: a style compared with many outputs)."""
    angles = torch.arange(directions, dtype=torch.float64) * (math.pi / directions)
    lines = torch.stack([angles.cos(), angles.sin()], dim=1).float().to(images.device)
    ab = rgb_to_lab(images.float())[:, 1:].flatten(2)  # (B, 2, pixels)
    projected = torch.einsum("kc,bcn->bkn", lines, ab).sort(dim=2).values
    index = ((torch.arange(quantiles, dtype=torch.float64) + 0.5) / quantiles * projected.shape[2]).long()
    return projected[:, :, index.to(projected.device)].cpu()


def palette_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """How far the colours of the images ``a`` are from those of ``b``, shape (B,), in CIE a*b* units
    (about Delta E). Two flat colours score 2 / pi of their a*b* distance: a flat grey against a flat
    sRGB primary 66-85.

    The sliced 1-Wasserstein (earth mover's) distance between the two images' pixel distributions in
    the a*b* plane: each is projected on ``PALETTE_DIRECTIONS`` lines through the origin, and the mean
    absolute difference of ``PALETTE_QUANTILES`` evenly spaced quantiles of the projections is averaged
    over the lines. It compares whole distributions, so a blue-and-yellow painting is far from a
    palette with the same mean and covariance spread between the two (which an RGB mean + covariance
    distance calls equal), and the images need not have one size. Lightness is left out: an output
    keeps the photo's light layout, which :func:`ssim` measures. Symmetric; zero for an image against
    itself.

    Either side may be images (B, 3, H, W) or their :func:`palette_quantiles`, and either may hold one
    image for all of the other's.
    """
    qa, qb = (x if x.dim() == 3 else palette_quantiles(x) for x in (a, b))
    if qa.shape[1:] != qb.shape[1:]:
        raise ParameterError(f"palette tables of different shapes: {tuple(qa.shape)} and {tuple(qb.shape)}")
    if 1 not in (qa.shape[0], qb.shape[0]) and qa.shape[0] != qb.shape[0]:
        raise ParameterError(f"palette_distance pairs {qa.shape[0]} images with {qb.shape[0]}")
    return (qa - qb).abs().mean(dim=(1, 2))


def retrieval(distances: torch.Tensor, own: torch.Tensor | Sequence[int]) -> float:
    """Style retrieval: the fraction of outputs (rows of ``distances``, one column per evaluated style)
    whose nearest style is their own (column ``own[i]``). Chance is 1 / the number of styles."""
    own = torch.as_tensor(own, dtype=torch.long)
    if distances.dim() != 2 or own.shape != distances.shape[:1]:
        raise ParameterError(
            f"retrieval needs an (outputs, styles) distance table and one style per output, got "
            f"{tuple(distances.shape)} and {tuple(own.shape)}"
        )
    return float((distances.argmin(dim=1) == own).double().mean())


GRID_PERIODS = (2, 4, 8)  # the decoder's three x2 upsamplings repeat with these periods (px)
_FLOOR = 4  # half-width of the frequency neighbourhood that gives each peak's noise floor


def _grey(images: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) luminance of RGB images; single-channel images as they are."""
    return luminance(images) if images.shape[1] == 3 else images


def _windowed_power(grey: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The power spectrum of (..., H, W) grey levels minus their mean under a 2-D Hann window, and the
    window. Without the window the jump between opposite borders puts a cross of energy on the
    frequency axes, which would read as peaks at (0, l) and (k, 0)."""
    h, w = grey.shape[-2:]
    window = torch.outer(
        torch.hann_window(h, periodic=True, dtype=grey.dtype, device=grey.device),
        torch.hann_window(w, periodic=True, dtype=grey.dtype, device=grey.device),
    )
    spectrum = torch.fft.fft2((grey - grey.mean(dim=(-2, -1), keepdim=True)) * window)
    return spectrum.real.square() + spectrum.imag.square(), window


def checkerboard(images: torch.Tensor, periods: tuple[int, ...] = GRID_PERIODS) -> torch.Tensor:
    """Grid/checkerboard artefact strength of each image, shape (B,): ~1 means none.

    A decoder that upsamples by 2x2 nearest neighbour leaves patterns that repeat every 2, 4 or 8
    pixels; in the luminance's power spectrum (Hann-windowed) they are peaks at the frequencies
    (k/p, l/p) cycles per pixel. For each period p the score is the power at those frequencies (DC
    excluded) over their local floors (each the median power of the 9x9 frequencies around it);
    the image's score is the largest over the periods. Measured at 512 px: photos about 1.6,
    paintings 2-3, Gatys outputs about 6; nearest-upsampling decoders' grids visible at 2x zoom
    about 25-45, plain at 100 % about 60. It is a detection ratio, not a size: on smooth images
    (bilinear decoders' outputs have almost no power near 2 px) a pattern of 0.05 grey levels,
    far below what can be seen, scores 60-80. :func:`grid_amplitude` measures the size.
    """
    grey = _grey(images)
    step = max(periods)
    h, w = (grey.shape[-2] // step) * step, (grey.shape[-1] // step) * step
    if min(h, w) // step < 2 * _FLOOR + 1:
        raise ParameterError(f"checkerboard needs images of at least {step * (2 * _FLOOR + 1)} px a side")
    power, _ = _windowed_power(grey[..., :h, :w].double()[:, 0])
    offsets = torch.arange(-_FLOOR, _FLOOR + 1, device=power.device)
    ring = torch.ones(2 * _FLOOR + 1, 2 * _FLOOR + 1, dtype=torch.bool, device=power.device)
    ring[_FLOOR, _FLOOR] = False
    scores = []
    for p in periods:
        peaks, floors = [], []
        for k in range(p):
            for m in range(p):
                if k == 0 and m == 0:
                    continue
                y, x = k * h // p, m * w // p
                block = power[:, (y + offsets) % h][:, :, (x + offsets) % w]
                floors.append(block[:, ring].median(dim=1).values)
                peaks.append(power[:, y, x])
        # summed, not a median of ratios: a pattern may live at only one of the frequencies
        scores.append(torch.stack(peaks).sum(0) / torch.stack(floors).sum(0).clamp_min(1e-12))
    return torch.stack(scores, dim=1).max(dim=1).values.float()


def periodic_tile(images: torch.Tensor, p: int) -> torch.Tensor:
    """The p x p tile an image repeats, shape (B, C, p, p), zero-mean, in the images' units.

    Each pixel minus its p x p running mean (which removes content slower than p px and keeps a
    p-periodic pattern whole), averaged over every p x p cell from the top-left corner: a pattern
    aligned with a decoder's upsampling cells adds up, content that is not periodic averages out.
    Differentiable; :func:`grid_amplitude` measures it and the training losses can penalise it.
    """
    if min(images.shape[-2:]) < 5 * p:  # at least 4 whole cells a side after the running mean
        raise ParameterError(f"a {p} px periodic tile needs images of at least {5 * p} px a side")
    box = F.avg_pool2d(images, p, stride=1)  # each pixel's p x p window holds every phase once
    detail = images[..., : box.shape[-2], : box.shape[-1]] - box
    h, w = (detail.shape[-2] // p) * p, (detail.shape[-1] // p) * p
    b, c = detail.shape[:2]
    tile = detail[..., :h, :w].reshape(b, c, h // p, p, w // p, p).mean(dim=(2, 4))
    return tile - tile.mean(dim=(2, 3), keepdim=True)


def grid_amplitude(images: torch.Tensor, periods: tuple[int, ...] = GRID_PERIODS) -> torch.Tensor:
    """How strong the repeating pattern is, shape (B,): RMS in 8-bit grey levels of the mean p x p tile.

    :func:`checkerboard` is a detection ratio: how far a periodic pattern stands out from the image's
    own power at those frequencies. A smooth image (a bilinear decoder's output) has almost no power
    there, so a pattern far too faint to see scores high. This is the pattern's size instead: the RMS
    of the luminance's :func:`periodic_tile`, the largest over the periods. Content that is not
    periodic averages out to about 0.1-0.6 levels at 512 px (more for the longer periods, which also
    hold the shorter ones).
    """
    grey = _grey(images).double() * 255
    out = [periodic_tile(grey, p).pow(2).mean(dim=(1, 2, 3)).sqrt() for p in periods]
    return torch.stack(out, dim=1).max(dim=1).values.float()


def frequency_radius(h: int, w: int, device: torch.device | str | None = None) -> torch.Tensor:
    """The frequency, in cycles per pixel, of each bin of an unshifted (h, w) FFT; 1 / it is the period."""
    fy, fx = torch.fft.fftfreq(h, device=device), torch.fft.fftfreq(w, device=device)
    return torch.hypot(fy[:, None], fx[None, :])


def _ring_power(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Windowed power of the images' luminance in 8-bit grey levels, flattened to (B, h*w); each bin's
    ring level (the geometric mean of the power of the bins at its radius, rings 1 / short side
    cycles/px wide; no gradient); the bins' radii; and the window."""
    grey = _grey(images).float()[:, 0] * 255
    h, w = grey.shape[-2:]
    power, hann = _windowed_power(grey)
    power = power.flatten(1)
    with torch.no_grad():
        radius = frequency_radius(h, w, grey.device).flatten()
        ring = (radius * min(h, w)).long()
        count = torch.zeros(int(ring.max()) + 1, device=grey.device)
        count.index_add_(0, ring, torch.ones_like(radius))
        log_sum = torch.zeros(power.shape[0], count.numel(), device=grey.device)
        log_sum.index_add_(1, ring, power.clamp_min(1e-12).log())
        level = (log_sum / count).exp()[:, ring]
    return power, level, radius, hann


def peak_ratio(images: torch.Tensor) -> torch.Tensor:
    """Per frequency, the luminance's spectral power over its ring's level (:func:`spectral_excess`),
    shape (B, h, w), unshifted FFT layout. A stripe stands far above its ring; natural images' bins
    mostly stay within 20x or so."""
    power, level, _, _ = _ring_power(images)
    return (power / level).view(-1, *images.shape[-2:])


def spectral_excess(images: torch.Tensor, ratio: float = 30.0, min_frequency: float = 1 / 16) -> torch.Tensor:
    """Per frequency, the luminance's spectral power above the level of its ring where it is a peak (over
    ``ratio`` times that level, or next to such a frequency: the window's spread), else 0; shape
    (B, h, w) (unshifted FFT layout), scaled so that its sum is a mean square in 8-bit grey levels
    squared (Parseval, and the window's mean square undone).

    A ring is the frequencies of one radius (1 / short side cycles/px wide); its level is the
    geometric mean of their power, held fixed for gradients. Frequencies slower than
    ``min_frequency`` cycles/px (content layout) count as none. See :func:`spectral_peaks`.
    """
    h, w = images.shape[-2:]
    power, level, radius, hann = _ring_power(images)
    with torch.no_grad():
        peak = ((power > ratio * level) & (radius >= min_frequency)).float().view(-1, 1, h, w)
        # the window spreads a pure frequency over its neighbours: take the 3x3 around each peak
        peak = F.max_pool2d(F.pad(peak, [1] * 4, mode="circular"), 3, stride=1).flatten(1)
    excess = F.relu(power - level) * peak * (radius >= min_frequency)
    return (excess / ((h * w) ** 2 * hann.square().mean())).view(-1, h, w)


def spectral_peaks(
    images: torch.Tensor, *references: torch.Tensor, ratio: float = 30.0, min_frequency: float = 1 / 16
) -> torch.Tensor:
    """Peaks in the luminance spectrum, shape (B,): mean square, in 8-bit grey levels squared, of the
    part of the image whose spectral power stands over ``ratio`` times the rest of its ring
    (:func:`spectral_excess`), leaving out the frequencies (give or take one step) where any of
    ``references`` (images of the same size: the content, the style) has a peak of its own.

    A decoder that draws one stripe or hatch texture whatever the style puts its power into a few
    orientations of one frequency, far above the other orientations (SANet's 3 px hatch, horizontal
    and vertical: 150-270x the ring's median), where most photos and paintings stay under about
    20x. Some hold real periodic structure (windows, fences, JPEG blocks), hence the references.
    Unlike :func:`grid_amplitude`, the pattern need not align with the decoder's upsampling cells.
    Differentiable in ``images``.
    """
    excess = spectral_excess(images, ratio, min_frequency)
    if references:
        with torch.no_grad():
            theirs = torch.stack([spectral_excess(r, ratio, min_frequency) > 0 for r in references])
            theirs = theirs.any(dim=0).float()[:, None]
            theirs = F.max_pool2d(F.pad(theirs, [1] * 4, mode="circular"), 3, stride=1)[:, 0]
        excess = excess * (1 - theirs)
    return excess.sum(dim=(1, 2))


@contextmanager
def timer() -> Iterator[dict[str, float]]:
    """``with timer() as t: ...`` then ``t["seconds"]`` (wall clock, perf_counter)."""
    out: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield out
    finally:
        out["seconds"] = time.perf_counter() - start
