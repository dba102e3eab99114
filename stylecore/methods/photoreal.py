"""Photo-realistic transfer (day-to-night, day-to-sunset) that keeps every edge of the photo.

The output is a *local affine colour transform* of the content: each pixel's RGB goes through a 3x4
affine matrix read from a bilateral grid (x, y, luminance), in the spirit of Deep Bilateral Learning
(Gharbi et al. 2017) and its use for photo-realistic style transfer (Xia et al., "Joint Bilateral
Learning for Real-time Universal Photorealistic Style Transfer", ECCV 2020). Instead of a trained
network predicting the grid, the grid is fitted per image pair by gradient descent on VGG losses:

* style: mean/std of the output's RGB values and relu1_1..relu4_1 features against the style's
  (the AdaIN statistics plus the palette; per semantic region when masks are given, so sky goes
  to sky);
* content: relu4_1 features against the content's;
* smoothness: total variation of the grid in x, y and luminance.

Because the output is a smooth function of the content's own colours, no new edge and no texture can
appear, so structure is kept by construction; and because the grid is sliced with the full-resolution
luminance as guide, fitting at ~512 px and applying at 4000x3000 is an edge-aware upsampling, done in
row bands to bound memory. No decoder and no trained weights are needed.
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import torch
from pydantic import Field
from torch.nn import functional as F

from stylecore.color import luminance
from stylecore.errors import StyleCoreError
from stylecore.methods.base import MethodParams, StyleCode, Stylizer
from stylecore.methods.registry import register_method
from stylecore.nets.encoder import VGGEncoder
from stylecore.ops import masked_mean_std, mean_std

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
STAT_LAYERS = ("pixels", *STYLE_LAYERS)  # "pixels": the RGB values themselves (the palette)
CONTENT_LAYER = "relu4_1"
BAND_PIXELS = 1 << 21  # pixels sliced at once at full resolution (~100 MB of coefficients)


class MaskWarning(UserWarning, StyleCoreError):
    """Semantic masks that do not match (a content region with no style counterpart, ...)."""


class PhotorealParams(MethodParams):
    work_size: int = Field(384, ge=64, le=2048, description="longest side at which the grid is fitted")
    steps: int = Field(100, ge=1, le=5000)
    lr: float = Field(0.05, gt=0)
    style_weight: float = Field(1.0, ge=0)
    content_weight: float = Field(0.3, ge=0)
    smooth_weight: float = Field(10.0, ge=0, description="total variation of the affine grid")
    grid_xy: int = Field(8, ge=1, le=64, description="spatial cells of the bilateral grid per side")
    grid_luma: int = Field(8, ge=1, le=64, description="luminance bins of the bilateral grid")


def identity_grid(xy: int, luma: int, device=None) -> torch.Tensor:
    """(1, 12, luma, xy, xy) coefficients of the identity affine transform [I | 0]."""
    eye = torch.cat([torch.eye(3), torch.zeros(3, 1)], dim=1).reshape(12, 1, 1, 1)
    return eye.expand(12, luma, xy, xy).reshape(1, 12, luma, xy, xy).clone().to(device)


def _slice_rows(grid: torch.Tensor, rows: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Affine-transform ``rows`` (1, 3, h, W), whose grid y coordinates in [-1, 1] are ``ys`` (h,)."""
    _, _, h, w = rows.shape
    xs = torch.linspace(-1, 1, w, device=rows.device, dtype=rows.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    gz = luminance(rows)[0, 0] * 2 - 1
    coords = torch.stack([gx, gy, gz], dim=-1)[None, None]  # (1, 1, h, W, 3) as (x, y, z)
    coeffs = F.grid_sample(grid, coords, mode="bilinear", align_corners=True, padding_mode="border")
    coeffs = coeffs[:, :, 0].reshape(1, 3, 4, h, w)
    return (coeffs[:, :, :3] * rows[:, None]).sum(2) + coeffs[:, :, 3]


def slice_grid(grid: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Apply the per-pixel affine transforms of ``grid`` (1, 12, D, Gh, Gw) to ``image`` (1, 3, H, W).

    Trilinear lookup at (x, y, luminance of the image itself): the luminance guide is what makes
    the upsampling edge-aware.
    """
    ys = torch.linspace(-1, 1, image.shape[2], device=image.device, dtype=image.dtype)
    return _slice_rows(grid, image, ys)


def apply_grid(grid: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """:func:`slice_grid` over horizontal bands, so a 4000x3000 photo needs a few hundred MB, not GBs.

    Bands take their y coordinates from the full image, so the result equals one whole slice.
    """
    _, _, h, w = image.shape
    step = max(1, BAND_PIXELS // w)
    ys = torch.linspace(-1, 1, h, device=image.device, dtype=image.dtype)
    out = torch.empty_like(image)
    for top in range(0, h, step):
        out[:, :, top : top + step] = _slice_rows(grid, image[:, :, top : top + step], ys[top : top + step])
    return out.clamp(0.0, 1.0)


def _resize(x: torch.Tensor, max_side: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    scale = max_side / max(h, w)
    if scale >= 1:
        return x
    size = (max(16, round(h * scale)), max(16, round(w * scale)))
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)


def _tv(grid: torch.Tensor) -> torch.Tensor:
    return sum((grid.diff(dim=d) ** 2).mean() for d in (2, 3, 4) if grid.shape[d] > 1) or grid.new_zeros(())


@register_method
class Photoreal(Stylizer):
    name: ClassVar[str] = "photoreal"
    Params: ClassVar[type[MethodParams]] = PhotorealParams
    supports_style_regions: ClassVar[bool] = True

    @classmethod
    def random(cls, encoder: VGGEncoder | None = None, *, seed: int = 0) -> Photoreal:
        torch.manual_seed(seed)
        return cls(encoder or VGGEncoder("vgg16-hed"))

    @torch.no_grad()
    def encode_style(self, style: torch.Tensor, region: torch.Tensor | None = None) -> StyleCode:
        """Style statistics, over the whole image or over ``region`` ((H, W) or (1, 1, H, W) in [0, 1])."""
        if region is None:
            return super().encode_style(style)
        style = style if style.dim() == 4 else style[None]
        self._region = region.reshape(1, 1, *region.shape[-2:]).float().to(self.device)
        try:
            return super().encode_style(style)
        finally:
            del self._region

    def _encode_style(self, style: torch.Tensor) -> dict[str, torch.Tensor]:
        style = _resize(style, 1024)
        feats = {"pixels": style, **self.encoder(style, STYLE_LAYERS)}
        region = getattr(self, "_region", None)
        out = {}
        for layer in STAT_LAYERS:
            if region is None:
                mean, std = mean_std(feats[layer])
            else:
                m = F.interpolate(region, size=feats[layer].shape[-2:], mode="area")
                if float(m.sum()) < 1.0:
                    raise StyleCoreError("a style mask region is too small to describe a style")
                mean, std = masked_mean_std(feats[layer], m)
            out[f"{layer}.mean"], out[f"{layer}.std"] = mean, std
        return out

    def _stylize(self, content, codes, params, *, weights, masks, generator):
        p: PhotorealParams = params  # type: ignore[assignment]
        outs = []
        for i in range(content.shape[0]):
            m = None if masks is None else masks[i : i + 1]
            grid = self.fit_grid(content[i : i + 1], codes, p, weights=weights, masks=m)
            out = apply_grid(grid, content[i : i + 1])
            if p.alpha < 1.0:
                out = p.alpha * out + (1.0 - p.alpha) * content[i : i + 1]
            outs.append(out)
        return torch.cat(outs)

    def fit_grid(self, content, codes, p: PhotorealParams, *, weights=None, masks=None) -> torch.Tensor:
        """Fit the bilateral grid on a downscaled copy of one content image (1, 3, H, W)."""
        small = _resize(content, p.work_size)
        with torch.no_grad():
            c_feat = self.encoder.encode(small, CONTENT_LAYER)
            c_norm = c_feat.pow(2).mean().clamp_min(1e-8)
        targets = self._targets(codes, weights)
        small_masks = None if masks is None else F.interpolate(masks, size=small.shape[-2:], mode="area")
        regions: dict[str, torch.Tensor] = {}
        grid = identity_grid(p.grid_xy, p.grid_luma, content.device).requires_grad_(True)
        opt = torch.optim.Adam([grid], lr=p.lr)
        for _ in range(p.steps):
            out = slice_grid(grid, small)
            feats = {"pixels": out, **self.encoder(out, STYLE_LAYERS)}
            style_loss = out.new_zeros(())
            for layer in STAT_LAYERS:
                f = feats[layer]
                for k, (mean_t, std_t) in enumerate(targets[layer]):
                    if small_masks is None:
                        mean, std = mean_std(f)
                        share = 1.0
                    else:
                        if layer not in regions:
                            regions[layer] = F.interpolate(small_masks, size=f.shape[-2:], mode="area")
                        r = regions[layer][:, k : k + 1]
                        share = float(r.mean())
                        if share < 1e-4:
                            continue
                        mean, std = masked_mean_std(f, r)
                    scale = mean_t.pow(2).mean() + std_t.pow(2).mean() + 1e-8
                    style_loss = (
                        style_loss
                        + share * ((mean - mean_t).pow(2).mean() + (std - std_t).pow(2).mean()) / scale
                    )
            content_loss = (feats[CONTENT_LAYER] - c_feat).pow(2).mean() / c_norm
            loss = p.style_weight * style_loss + p.content_weight * content_loss + p.smooth_weight * _tv(grid)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return grid.detach()

    def _targets(self, codes: list[StyleCode], weights) -> dict[str, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Per layer, one (mean, std) per region; mixing several styles averages their statistics."""
        out: dict[str, list] = {}
        for layer in STAT_LAYERS:
            pairs = [(c.tensors[f"{layer}.mean"], c.tensors[f"{layer}.std"]) for c in codes]
            if weights is not None:
                mean = sum(float(w) * m for w, (m, _) in zip(weights, pairs, strict=True))
                std = sum(float(w) * s for w, (_, s) in zip(weights, pairs, strict=True))
                pairs = [(mean, std)]
            out[layer] = pairs
        return out


def labels_from_colours(
    seg: torch.Tensor, tolerance: float = 0.2
) -> dict[tuple[int, int, int], torch.Tensor]:
    """Split a colour-coded segmentation (3, H, W) in [0, 1] into one binary mask per colour.

    Each channel snaps to 0, 0.5 or 1, which covers the DPST colours (black, white, grey, red, green,
    blue, yellow, cyan, magenta); pixels further than ``tolerance`` from their snapped colour
    (anti-aliased or resampled borders) belong to no region.
    """
    snapped = (seg * 2).round() / 2
    close = (seg - snapped).abs().amax(0) <= tolerance
    keys = (snapped * 2).to(torch.int64)
    keys = keys[0] * 9 + keys[1] * 3 + keys[2]
    out = {}
    for key in keys[close].unique().tolist():
        colour = tuple(min(255, v * 128) for v in (key // 9, (key // 3) % 3, key % 3))
        out[colour] = ((keys == key) & close).float()
    return out


def paired_regions(
    content_seg: torch.Tensor, style_seg: torch.Tensor, min_share: float = 0.002
) -> tuple[list[tuple[int, int, int]], torch.Tensor, torch.Tensor]:
    """Colours present in both masks, with the content masks (K, H, W) and style masks (K, h, w).

    A content colour with no style counterpart is merged into the largest shared region and reported
    with a :class:`MaskWarning`; style-only colours are ignored (with a warning too).
    """
    c_labels, s_labels = labels_from_colours(content_seg), labels_from_colours(style_seg)
    c_labels = {k: v for k, v in c_labels.items() if float(v.mean()) >= min_share}
    s_labels = {k: v for k, v in s_labels.items() if float(v.mean()) >= min_share}
    shared = sorted(set(c_labels) & set(s_labels), key=lambda k: -float(c_labels[k].mean()))
    if not shared:
        raise StyleCoreError(
            f"the content and style masks share no colour "
            f"(content: {sorted(c_labels)}, style: {sorted(s_labels)})"
        )
    content_only = sorted(set(c_labels) - set(s_labels))
    style_only = sorted(set(s_labels) - set(c_labels))
    if content_only:
        warnings.warn(
            f"content mask colours {content_only} have no match in the style mask; they take the style of "
            f"the largest shared region {shared[0]}",
            MaskWarning,
            stacklevel=2,
        )
    if style_only:
        warnings.warn(
            f"style mask colours {style_only} do not appear in the content mask", MaskWarning, stacklevel=2
        )
    c_masks = torch.stack([c_labels[k] for k in shared])
    for k in content_only:
        c_masks[0] = torch.maximum(c_masks[0], c_labels[k])
    return shared, c_masks, torch.stack([s_labels[k] for k in shared])
