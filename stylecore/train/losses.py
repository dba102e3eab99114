"""Training losses, as the papers define them, on the one encoder."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from stylecore.encoders import VGGEncoder
from stylecore.ops import adain, mean_std

ADAIN_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


def mean_std_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """MSE between channel means plus MSE between channel stds (AdaIN's style loss for one layer)."""
    ma, sa = mean_std(a)
    mb, sb = mean_std(b)
    return F.mse_loss(ma, mb) + F.mse_loss(sa, sb)


def adain_losses(
    encoder: VGGEncoder, decoder: torch.nn.Module, content: torch.Tensor, style: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Huang & Belongie 2017, eq. 11-13: content MSE to the AdaIN target t at relu4_1, and the style
    mean/std loss at relu1_1..relu4_1, on the re-encoded output g(t). Unweighted terms."""
    with torch.no_grad():
        style_feats = encoder(style, ADAIN_STYLE_LAYERS)
        c4 = encoder.encode(content, "relu4_1")
        mean, std = mean_std(style_feats["relu4_1"])
        t = adain(c4, mean, std)
    out = decoder(t)
    out_feats = encoder(out, ADAIN_STYLE_LAYERS)
    content_loss = F.mse_loss(out_feats["relu4_1"], t)
    style_loss = sum(mean_std_loss(out_feats[k], style_feats[k]) for k in ADAIN_STYLE_LAYERS)
    return {"content": content_loss, "style": style_loss}
