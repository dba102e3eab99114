"""Colour-space helpers: luminance (for SSIM), CIE Lab (for palettes) and colour preservation by
luminance transfer."""

from __future__ import annotations

import torch

# ITU-R BT.601 luma and chroma (the YCbCr of JPEG), on RGB in [0, 1].
_RGB_TO_YCC = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB -> YCbCr with Y in [0, 1] and Cb, Cr centred on 0."""
    return torch.einsum("ij,bjhw->bihw", _RGB_TO_YCC.to(rgb), rgb)


def ycbcr_to_rgb(ycc: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_RGB_TO_YCC).to(ycc), ycc)


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) BT.601 luma."""
    return rgb_to_ycbcr(rgb)[:, :1]


# sRGB primaries to CIE XYZ, D65 white (IEC 61966-2-1), and that white's XYZ
_RGB_TO_XYZ = torch.tensor(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_D65 = torch.tensor([0.950456, 1.0, 1.088754])


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) sRGB in [0, 1] -> CIE L*a*b* (D65): L* in [0, 100], a* and b* about -100..100.

    Euclidean distances in Lab approximate perceived colour differences (Delta E 1976), which RGB's
    do not: what a palette distance needs.
    """
    rgb = rgb.clamp(0.0, 1.0)
    linear = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = torch.einsum("ij,bjhw->bihw", _RGB_TO_XYZ.to(rgb), linear) / _D65.to(rgb).view(1, 3, 1, 1)
    delta = 6 / 29
    f = torch.where(xyz > delta**3, xyz.clamp_min(delta**3) ** (1 / 3), xyz / (3 * delta**2) + 4 / 29)
    fx, fy, fz = f.unbind(1)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=1)


def preserve_color(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Keep the stylized luminance and the content's chroma (Gatys et al. 2016, "luminance-only transfer").

    The stylized luminance is matched to the content's mean/std first, as in that paper, so the
    brightness of the photo is kept too. Works for every method and needs no per-pair style encoding.
    """
    out, ref = rgb_to_ycbcr(stylized), rgb_to_ycbcr(content)
    y, y_ref = out[:, :1], ref[:, :1]
    dims = (2, 3)
    y = (y - y.mean(dims, keepdim=True)) / (y.std(dims, keepdim=True) + 1e-5)
    y = y * y_ref.std(dims, keepdim=True) + y_ref.mean(dims, keepdim=True)
    return ycbcr_to_rgb(torch.cat([y, ref[:, 1:]], dim=1)).clamp(0.0, 1.0)


def colour_moments(image: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 3, H, W) RGB -> (B, 3, 4): each image's colour covariance (3x3) beside its mean (3x1).

    ``weight`` (B, 1, H, W) >= 0 restricts the moments to a soft region."""
    x = image.flatten(2).float()  # (B, 3, N)
    w = torch.ones_like(x[:, :1]) if weight is None else weight.flatten(2).float().expand_as(x[:, :1])
    w = w / w.sum(-1, keepdim=True).clamp_min(1e-8)
    mean = (x * w).sum(-1, keepdim=True)  # (B, 3, 1)
    d = x - mean
    cov = (d * w) @ d.transpose(1, 2)
    return torch.cat([cov, mean], dim=2)


def mix_moments(moments: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The moments of a mixture: (K, 3, 4) moments and K weights summing to 1 -> (3, 4)."""
    w = weights.to(moments).view(-1, 1, 1)
    mean = (w * moments[:, :, 3:]).sum(0)
    second = (w * (moments[:, :, :3] + moments[:, :, 3:] @ moments[:, :, 3:].transpose(1, 2))).sum(0)
    return torch.cat([second - mean @ mean.T, mean], dim=1)


def _sqrt_psd(m: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Square root and inverse square root of symmetric positive semi-definite (B, 3, 3) matrices."""
    vals, vecs = torch.linalg.eigh(m)
    vals = vals.clamp_min(eps)  # a flat image's zero variance: no division by zero, a bounded gain
    root = vecs @ torch.diag_embed(vals.sqrt()) @ vecs.transpose(1, 2)
    inv = vecs @ torch.diag_embed(vals.rsqrt()) @ vecs.transpose(1, 2)
    return root, inv


def match_palette(
    image: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None, eps: float = 1e-6
) -> torch.Tensor:
    """Map each image's RGB values linearly onto target colour moments (B or 1, 3, 4).

    The Monge-Kantorovich linear map (Pitié & Kokaram, "The linear Monge-Kantorovitch linear colour
    mapping for example-based colour transfer", 2007): the map with the least displacement that gives
    the image the target's colour mean and full covariance, so a blue-and-yellow painting's palette is
    reproduced where per-channel statistics would give teal. ``weight`` computes the image's own
    moments over a soft region. Not clamped.
    """
    own = colour_moments(image, weight).double()  # the 3x3 algebra in float64, the pixels in float32
    target = target.to(own).expand_as(own)
    cs, ct = own[:, :, :3], target[:, :, :3]
    root, inv = _sqrt_psd(cs, eps)
    middle, _ = _sqrt_psd(root @ ct @ root, eps * eps)  # variances squared: the floor squared too
    t = inv @ middle @ inv  # (B, 3, 3)
    shift = target[:, :, 3:] - t @ own[:, :, 3:]
    out = torch.baddbmm(shift.float(), t.float(), image.flatten(2).float())
    return out.view_as(image).to(image.dtype)
