"""StyleMesh texture optimisation (Höllein, Johnson & Nießner, CVPR 2022), for single textured meshes.

The texture pyramid (:class:`~stylecore.mesh.texture.TexturePyramid`) is rendered from precomputed view
maps and optimised with Adam so that every view matches the style's Gram matrices at relu1_1..relu5_1
and keeps the relu4_2 content of the same view rendered with the original texture. The losses are
normalised as in :mod:`stylecore.methods.gatys` (``||G - S||^2 / ||S||^2``, ``||F - F0||^2 / ||F0||^2``),
so the same weights mean the same thing for both methods.

Two things make the style land evenly on the surface rather than on the images:

* angle weighting: each pixel's contribution to the Gram matrices is weighted by cos(angle between
  ray and normal)^p (``angle_power``), so grazing views, where a texel is smeared over many pixels,
  hardly pull on the texture. The weights are also the hit mask, so the background is not in the
  Gram matrices at all. Gram = sum_p w_p f_p f_p^T / sum_p w_p, i.e. the plain Gram when w = 1.
* depth awareness: StyleMesh matches surfaces at different depths to the style at different scales, so
  strokes have one size on the surface, not on the screen. Here each view gets the nearest of
  ``depth_scales`` to ``d_ref / d_view`` (d_view: the view's median depth, d_ref: the median of those),
  and is matched to the Gram matrices of the style image resized by that scale (close views see bigger
  strokes). Per view rather than per pixel (the paper bins pixels): per-pixel bins cost one Gram per
  bin and tripled the step time on CPU, while the views' distances (``distances`` x jitter) vary far
  more than depth does within one view of a single object.

Learning rate: the paper's Adam lr 1 is for its own texture scale; here texture values are in [0, 1] and
every level takes a step of up to ``lr``, so the summed texture moves up to levels x lr per step. 0.03
(cosine-decayed to 0.003) stylised Spot visibly in 120 steps; 0.01 was still mostly the original colours.

Plus mip-style level weights (see :func:`~stylecore.mesh.texture.level_weights`) against aliasing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch.nn import functional as F

from stylecore.device import resolve_device
from stylecore.errors import ParameterError
from stylecore.imageio import read_image
from stylecore.mesh.io import TexturedMesh, texel_coverage
from stylecore.mesh.texture import TexturePyramid, composite, fill_gutters, level_weights, uv_to_grid
from stylecore.mesh.views import ViewMaps, cached_view_maps, orbit_cameras
from stylecore.models import load_encoder
from stylecore.nets.encoder import STYLE_LAYERS, VGGEncoder
from stylecore.ops import gram

__all__ = ["CONTENT_LAYER", "MeshStyleConfig", "MeshStyleResult", "stylize_mesh"]

CONTENT_LAYER = "relu4_2"
ProgressFn = Callable[[int, dict[str, float]], None]


class MeshStyleConfig(BaseModel):
    """Everything a StyleMesh run depends on (a manifest ``mesh`` job maps onto these fields)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    styles: list[Path] = Field(default_factory=list, description="style images (or pass tensors)")
    style_weights: list[float] | None = Field(None, description="blend weights of several styles")
    texture_size: int | None = Field(1024, ge=16, le=8192, description="longest side; None keeps the mesh's")
    pyramid_levels: int = Field(4, ge=1, le=8)
    render_size: int = Field(256, ge=32, le=2048, description="view size the encoder sees")
    supersample: int = Field(2, ge=1, le=4, description="rays per pixel per axis")
    n_azimuth: int = Field(8, ge=1, le=360)
    elevations: tuple[float, ...] = (-20.0, 15.0, 50.0)
    distances: tuple[float, ...] = Field((1.0, 0.6), description="x the distance that frames the object")
    fov_deg: float = Field(40.0, ge=5, le=120)
    up_axis: Literal["x", "y", "z"] = "y"
    iterations: int = Field(500, ge=1, le=100_000)
    views_per_step: int = Field(4, ge=1, le=64)
    style_weight: float = Field(1e4, ge=0)
    content_weight: float = Field(1.0, ge=0)
    lr: float = Field(0.03, gt=0, le=10, description="Adam step per level, texture values in [0, 1]")
    lr_decay: bool = Field(True, description="cosine decay to lr/10 over the run")
    angle_power: float = Field(1.0, ge=0, description="0 turns the angle weighting off")
    depth_aware: bool = True
    depth_scales: tuple[float, ...] = (0.5, 0.71, 1.0, 1.41, 2.0)
    mip: bool = True
    background: tuple[float, float, float] | None = Field(None, description="None: the style's mean colour")
    seed: int = 0
    device: str = "auto"
    precision: Literal["fp32", "bf16"] = "fp32"
    encoder: str = "vgg16-hed"

    @model_validator(mode="after")
    def _check(self) -> MeshStyleConfig:
        if self.styles and self.style_weights is not None and len(self.style_weights) != len(self.styles):
            raise ValueError("style_weights needs one weight per style")
        if not self.depth_scales or any(s <= 0 for s in self.depth_scales):
            raise ValueError("depth_scales must be positive")
        if not self.elevations or not self.distances or any(d <= 0 for d in self.distances):
            raise ValueError("elevations and distances must be non-empty, distances > 0")
        return self

    @property
    def n_views(self) -> int:
        return self.n_azimuth * len(self.elevations) * len(self.distances)


@dataclass
class MeshStyleResult:
    texture: torch.Tensor  # (3, H, W) float32 on the CPU, in [0, 1], gutters filled
    mesh: TexturedMesh  # the input mesh carrying the new texture
    losses: dict[str, float]  # of the last step (mean over its views)
    seconds: float
    n_views: int
    device: str
    history: list[dict[str, float]] = field(default_factory=list)


def _resize(img: torch.Tensor, max_side: int) -> torch.Tensor:
    h, w = img.shape[-2:]
    s = max_side / max(h, w)
    size = (max(16, round(h * s)), max(16, round(w * s)))
    return F.interpolate(img[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]


def _weighted_gram(feat: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``sum_p w_p f_p f_p^T / sum_p w_p`` per sample (B, C, C): the Gram over weighted positions."""
    b, c = feat.shape[:2]
    f = feat.reshape(b, c, -1)
    w = weight.reshape(b, 1, -1)
    return torch.bmm(f * w, f.transpose(1, 2)) / w.sum(dim=2, keepdim=True).clamp_min(1e-6)


def _style_loss(
    feats: dict[str, torch.Tensor],
    weights: torch.Tensor,
    targets: dict[str, torch.Tensor],
    norms: dict[str, torch.Tensor],
) -> torch.Tensor:
    """Angle-weighted Gram loss per view (B,) against per-view targets (B, C, C) and their norms (B,)."""
    loss = weights.new_zeros(weights.shape[0])
    for layer in STYLE_LAYERS:
        f = feats[layer]
        g = _weighted_gram(f, F.adaptive_avg_pool2d(weights, f.shape[-2:]))
        loss = loss + (g - targets[layer]).pow(2).sum(dim=(1, 2)) / norms[layer] / len(STYLE_LAYERS)
    return loss


def _style_targets(
    encoder: VGGEncoder,
    styles: Sequence[torch.Tensor],
    weights: Sequence[float],
    scales: Sequence[float],
    base_side: int,
    device: torch.device,
) -> list[dict[str, torch.Tensor]]:
    """One Gram target per depth scale (blended over styles), from the style resized to scale x base_side."""
    targets = []
    with torch.no_grad():
        for s in scales:
            blend: dict[str, torch.Tensor] = {}
            for img, wt in zip(styles, weights, strict=True):
                feats = encoder(_resize(img, round(base_side * s))[None].to(device), STYLE_LAYERS)
                for layer in STYLE_LAYERS:
                    g = wt * gram(feats[layer])[0]
                    blend[layer] = blend[layer] + g if layer in blend else g
            targets.append(blend)
    return targets


class _ViewTensors:
    """The view maps on the device, per-pixel Gram weights at render resolution, each view's style scale."""

    def __init__(self, maps: ViewMaps, cfg: MeshStyleConfig, device: torch.device) -> None:
        ss = cfg.supersample
        self.uv = torch.from_numpy(maps.uv).to(device)
        self.grid = uv_to_grid(self.uv)
        self.mask = torch.from_numpy(maps.mask).to(device)
        depth = torch.from_numpy(maps.depth).to(device)
        cos = torch.from_numpy(maps.cos).to(device)
        angle = cos.clamp_min(0).pow(cfg.angle_power) * self.mask
        self.weights = F.avg_pool2d(angle[:, None], ss) if ss > 1 else angle[:, None]  # (N, 1, H, W)
        log_scales = torch.log2(torch.tensor(cfg.depth_scales, device=device))
        if cfg.depth_aware:
            medians = torch.stack([d[m].median() for d, m in zip(depth, self.mask, strict=True)])
            ratio = torch.log2(medians.median() / medians)  # > 0: closer than usual, bigger strokes
            self.scale_index = (ratio[:, None] - log_scales).abs().argmin(dim=1)
        else:
            self.scale_index = log_scales.abs().argmin().repeat(maps.n_views)


def stylize_mesh(
    mesh: TexturedMesh,
    config: MeshStyleConfig,
    *,
    style_images: Sequence[torch.Tensor] | None = None,
    encoder: VGGEncoder | None = None,
    cache_dir: str | Path | None = None,
    on_progress: ProgressFn | None = None,
) -> MeshStyleResult:
    """Optimise ``mesh``'s texture towards the style(s); return the texture, final losses and seconds.

    ``style_images`` (3, H, W) tensors in [0, 1] replace ``config.styles``. ``encoder`` defaults to
    ``load_encoder(config.encoder)`` on the config's device. View maps are cached in ``cache_dir``.
    ``on_progress(step, losses)`` is called after every step (1-based).
    """
    t0 = time.perf_counter()
    cfg = config
    device = resolve_device(cfg.device)
    styles = list(style_images) if style_images is not None else [read_image(p) for p in cfg.styles]
    if not styles:
        raise ParameterError("stylize_mesh needs at least one style image")
    if cfg.style_weights is not None and len(cfg.style_weights) != len(styles):
        raise ParameterError(f"{len(cfg.style_weights)} style_weights for {len(styles)} style images")
    raw = cfg.style_weights or [1.0] * len(styles)
    if sum(raw) <= 0 or min(raw) < 0:
        raise ParameterError("style_weights must be >= 0 with a positive sum")
    weights = [w / sum(raw) for w in raw]  # a blend of the styles' Gram matrices
    if encoder is None:
        encoder = load_encoder(cfg.encoder, device=device)
    elif next(encoder.parameters()).device.type != device.type:
        raise ParameterError(
            f"encoder is on {next(encoder.parameters()).device}, the config asks for {device}"
        )

    cameras = orbit_cameras(
        cfg.n_azimuth, cfg.elevations, cfg.distances, fov_deg=cfg.fov_deg, seed=cfg.seed, up_axis=cfg.up_axis
    )
    maps = cached_view_maps(mesh, cameras, cfg.render_size * cfg.supersample, cache_dir)
    # Views that see almost nothing (a close-up aimed past the surface) would only add noise.
    maps = maps.subset(maps.mask.mean(axis=(1, 2)) > 0.02)
    if maps.n_views == 0:
        raise ParameterError("no camera sees the mesh; check up_axis, distances and fov_deg")
    views = _ViewTensors(maps, cfg, device)

    init = mesh.texture.float()
    if cfg.texture_size is not None and max(init.shape[-2:]) != cfg.texture_size:
        init = _resize(init, cfg.texture_size)
    pyramid = TexturePyramid(init.to(device), cfg.pyramid_levels)
    original = TexturePyramid(init.to(device), cfg.pyramid_levels).requires_grad_(False)
    tex_hw = pyramid.size

    mean_style = torch.stack([s.mean(dim=(1, 2)) for s in styles]).mean(0)
    background = tuple(float(x) for x in (cfg.background or mean_style.tolist()))
    # Only the scales some view uses are encoded (the 2x one means a style image twice the render size).
    used = sorted(set(views.scale_index.tolist()))
    encoded = _style_targets(
        encoder, styles, weights, [cfg.depth_scales[k] for k in used], cfg.render_size, device
    )
    targets = [encoded[used.index(k)] if k in used else encoded[0] for k in range(len(cfg.depth_scales))]
    stacked = {layer: torch.stack([t[layer] for t in targets]) for layer in STYLE_LAYERS}  # (K, C, C)
    stacked_norms = {layer: g.pow(2).sum(dim=(1, 2)).clamp_min(1e-8) for layer, g in stacked.items()}

    def render(tex: TexturePyramid, idx: torch.Tensor) -> torch.Tensor:
        w = level_weights(views.uv[idx], views.mask[idx], tex_hw, tex.n_levels) if cfg.mip else None
        return composite(tex.sample(views.grid[idx], w), views.mask[idx], background, cfg.supersample)

    content_cache: dict[int, torch.Tensor] = {}

    def content_targets(idx: torch.Tensor) -> torch.Tensor:
        missing = [i for i in idx.tolist() if i not in content_cache]
        if missing:
            with torch.no_grad():
                feats = encoder.encode(render(original, torch.tensor(missing, device=device)), CONTENT_LAYER)
            content_cache.update({i: f for i, f in zip(missing, feats, strict=True)})
        return torch.stack([content_cache[i] for i in idx.tolist()])

    opt = torch.optim.Adam(pyramid.parameters(), lr=cfg.lr)
    # Each step sees a few random views, so a texel's gradient flips between steps; a decaying step
    # lets the end of the run average that out instead of leaving Adam's last jitter in the texture.
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=cfg.iterations, eta_min=cfg.lr * (0.1 if cfg.lr_decay else 1.0)
    )
    rng = np.random.default_rng(cfg.seed)
    order: list[int] = []
    history: list[dict[str, float]] = []
    bf16 = cfg.precision == "bf16"
    for step in range(1, cfg.iterations + 1):
        batch: list[int] = []
        while len(batch) < min(cfg.views_per_step, maps.n_views):
            if not order:
                order = rng.permutation(maps.n_views).tolist()
            i = order.pop()
            if i not in batch:
                batch.append(i)
        idx = torch.tensor(batch, device=device)
        c_target = content_targets(idx)
        opt.zero_grad(set_to_none=True)
        image = render(pyramid, idx)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            feats = encoder(image, (*STYLE_LAYERS, CONTENT_LAYER))
        feats = {k: v.float() for k, v in feats.items()}
        content = (feats[CONTENT_LAYER] - c_target).pow(2).sum(dim=(1, 2, 3)) / c_target.pow(2).sum(
            dim=(1, 2, 3)
        ).clamp_min(1e-8)
        k = views.scale_index[idx]
        style = _style_loss(
            feats,
            views.weights[idx],
            {layer: stacked[layer][k] for layer in STYLE_LAYERS},
            {layer: stacked_norms[layer][k] for layer in STYLE_LAYERS},
        )
        loss = (cfg.content_weight * content + cfg.style_weight * style).mean()
        loss.backward()
        opt.step()
        sched.step()
        pyramid.clamp_(0.0, 1.0)
        losses = {
            k: float(v.detach().mean()) for k, v in (("style", style), ("content", content), ("total", loss))
        }
        history.append(losses)
        if on_progress is not None:
            on_progress(step, losses)

    with torch.no_grad():
        texture = pyramid.compose().clamp(0, 1).cpu()
    covered = texel_coverage(mesh, size=tex_hw)
    covered = F.max_pool2d(covered[None, None].float(), 3, 1, 1)[0, 0] > 0  # keep a ring for bilinear reads
    texture = fill_gutters(texture, covered)
    return MeshStyleResult(
        texture=texture,
        mesh=mesh.with_texture(texture),
        losses=history[-1],
        seconds=time.perf_counter() - t0,
        n_views=maps.n_views,
        device=str(device),
        history=history,
    )
