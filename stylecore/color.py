"""Colour-space helpers: luminance (for SSIM) and colour preservation by luminance transfer."""

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
