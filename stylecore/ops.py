"""Feature statistics shared by every method, loss and metric (one home for each formula)."""

from __future__ import annotations

import torch

EPS = 1e-5


def mean_std(feat: torch.Tensor, eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation over space, shaped (B, C, 1, 1).

    The variance is unbiased, as in the upstream AdaIN code, so decoders trained there load here.
    """
    b, c = feat.shape[:2]
    flat = feat.reshape(b, c, -1)
    var = flat.var(dim=2, unbiased=flat.shape[2] > 1) + eps
    return flat.mean(dim=2).view(b, c, 1, 1), var.sqrt().view(b, c, 1, 1)


def mean_variance_norm(feat: torch.Tensor) -> torch.Tensor:
    """Normalise each channel to zero mean and unit variance (SANet's ``mean_variance_norm``)."""
    mean, std = mean_std(feat)
    return (feat - mean) / std


def adain(content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor) -> torch.Tensor:
    """``AdaIN(x, y) = sigma(y) (x - mu(x)) / sigma(x) + mu(y)`` (Huang & Belongie 2017, eq. 8)."""
    return mean_variance_norm(content) * style_std + style_mean


def gram(feat: torch.Tensor) -> torch.Tensor:
    """Gram matrix ``G = F F^T / (h w)`` per sample, shaped (B, C, C) (Gatys et al. 2016)."""
    b, c, h, w = feat.shape
    flat = feat.reshape(b, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / (h * w)


def masked_mean_std(
    feat: torch.Tensor, mask: torch.Tensor, eps: float = EPS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean/std over the positions where ``mask`` (B, 1, H, W in [0, 1]) is on, shaped (B, C, 1, 1)."""
    weight = mask.sum(dim=(2, 3), keepdim=True).clamp_min(1.0)
    mean = (feat * mask).sum(dim=(2, 3), keepdim=True) / weight
    var = (((feat - mean) ** 2) * mask).sum(dim=(2, 3), keepdim=True) / weight
    return mean, (var + eps).sqrt()
