"""The optimised texture (a summed multi-resolution pyramid) and rendering views from UV maps.

StyleMesh optimises a texture pyramid whose levels are upsampled and summed. Coarse levels give
every step a gradient over large areas (a pixel of a 256 px view covers several texels of a 1024+
texture, so the finest level alone would only be nudged at the sampled texels and turn to speckle).

Each view samples the levels it can resolve: a level whose texels are finer than the pixel's footprint
(from the UV map's screen derivatives) is faded out, as mip-mapping would, so far views shape coarse
levels and close-ups the fine ones.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from stylecore.errors import ParameterError

__all__ = ["TexturePyramid", "composite", "fill_gutters", "level_weights", "render_texture", "uv_to_grid"]


class TexturePyramid(nn.Module):
    """Levels ``0`` (full size) .. ``L-1`` (coarsest, /2 each); the texture is the sum of all upsampled.

    Initialised as a Laplacian pyramid of ``init`` so the summed texture starts exactly at ``init``.
    """

    def __init__(self, init: torch.Tensor, levels: int = 4, min_size: int = 8) -> None:
        super().__init__()
        if init.dim() != 3 or init.shape[0] != 3:
            raise ParameterError(f"texture must be (3, H, W), got {tuple(init.shape)}")
        h, w = init.shape[-2:]
        n = max(1, min(levels, 1 + int(math.log2(max(1, min(h, w) // min_size)))))
        self.size = (int(h), int(w))
        sizes = [(max(1, h >> j), max(1, w >> j)) for j in range(n)]
        x = init[None].float()
        blurred = [F.interpolate(x, size=s, mode="area") if j else x for j, s in enumerate(sizes)]
        coarse = [blurred[-1]]
        for j in range(n - 2, 0, -1):  # band-pass residuals between neighbouring resolutions
            up = F.interpolate(blurred[j + 1], size=sizes[j], mode="bilinear", align_corners=False)
            coarse.insert(0, blurred[j] - up)
        finest = x - sum((self._up(c) for c in coarse), torch.zeros_like(x))
        self.levels = nn.ParameterList([nn.Parameter(t.contiguous()) for t in [finest, *coarse]])

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    def _up(self, level: torch.Tensor) -> torch.Tensor:
        if tuple(level.shape[-2:]) == self.size:
            return level
        return F.interpolate(level, size=self.size, mode="bilinear", align_corners=False)

    def compose(self) -> torch.Tensor:
        """The texture (3, H, W): the sum of every level upsampled to full size."""
        return sum((self._up(t) for t in self.levels), torch.zeros_like(self.levels[0]))[0]

    def sample(self, grid: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Colours (B, 3, h, w) at ``grid`` (B, h, w, 2), each level scaled by ``weights`` (B, L, h, w)."""
        b, h, w, _ = grid.shape
        flat = grid.reshape(1, b * h, w, 2)  # one grid_sample per level for the whole batch
        out = torch.zeros(b, 3, h, w, device=grid.device, dtype=grid.dtype)
        for j, level in enumerate(self.levels):
            s = F.grid_sample(level, flat, mode="bilinear", padding_mode="border", align_corners=False)
            s = s.reshape(3, b, h, w).transpose(0, 1)
            out = out + (s if weights is None else s * weights[:, j : j + 1])
        return out

    @torch.no_grad()
    def clamp_(self, low: float = 0.0, high: float = 1.0) -> None:
        """Project the summed texture back into [low, high] by correcting the full-size level."""
        full = self.compose()
        self.levels[0].sub_((full - full.clamp(low, high))[None])


def uv_to_grid(uv: torch.Tensor) -> torch.Tensor:
    """OBJ UVs (v = 0 at the bottom row) -> ``grid_sample`` coordinates (-1 = left/top)."""
    return torch.stack([uv[..., 0] * 2 - 1, 1 - uv[..., 1] * 2], dim=-1)


def level_weights(
    uv: torch.Tensor, mask: torch.Tensor, texture_hw: tuple[int, int], levels: int
) -> torch.Tensor:
    """Per-pixel weights (B, L, H, W) of each pyramid level from the UV footprint of a pixel.

    The footprint (in full-size texels) comes from the UV differences to the neighbouring pixels; the
    smaller of the forward/backward difference is used so UV seams and silhouettes do not count as
    huge footprints. Level j (texel = 2^j full texels) is on when 2^j >= footprint and fades out over
    one octave below; the coarsest level is always on.
    """
    scale = uv.new_tensor([texture_hw[1], texture_hw[0]])
    t = uv * scale
    m = mask.float()

    def footprint(dim: int) -> torch.Tensor:
        d = (t.narrow(dim, 1, t.shape[dim] - 1) - t.narrow(dim, 0, t.shape[dim] - 1)).norm(dim=-1)
        ok = m.narrow(dim, 1, m.shape[dim] - 1) * m.narrow(dim, 0, m.shape[dim] - 1)
        d = torch.where(ok > 0, d, torch.full_like(d, float("inf")))
        inf = torch.full_like(d.narrow(dim, 0, 1), float("inf"))
        fwd = torch.cat([d, inf], dim=dim)
        bwd = torch.cat([inf, d], dim=dim)
        out = torch.minimum(fwd, bwd)
        return torch.where(torch.isinf(out), torch.ones_like(out), out)

    fp = torch.maximum(footprint(1), footprint(2)).clamp_min(1e-6)
    lod = torch.log2(fp)
    j = torch.arange(levels, device=uv.device, dtype=uv.dtype).view(1, -1, 1, 1)
    w = (j - lod[:, None] + 1).clamp(0, 1)
    w[:, -1] = 1.0
    return w


def composite(
    colors: torch.Tensor,
    mask: torch.Tensor,
    background: torch.Tensor | tuple[float, float, float],
    factor: int = 1,
) -> torch.Tensor:
    """Colours where the mesh is hit, ``background`` elsewhere; then average ``factor``x``factor`` blocks.

    The block average is the supersampling: rays are cast at ``factor`` x the output resolution.
    """
    bg = torch.as_tensor(background, dtype=colors.dtype, device=colors.device).view(1, 3, 1, 1)
    m = mask.to(colors.dtype)[:, None]
    out = colors * m + bg * (1 - m)
    return F.avg_pool2d(out, factor) if factor > 1 else out


def render_texture(
    texture: torch.Tensor,
    uv: torch.Tensor,
    mask: torch.Tensor,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    factor: int = 1,
    shade: torch.Tensor | None = None,
) -> torch.Tensor:
    """Render views (B, 3, H/factor, W/factor) of a plain texture (3, H, W) from UV maps (B, H, W, 2).

    ``shade`` (B, H, W) multiplies the colours (e.g. a headlight term from the angle map).
    """
    grid = uv_to_grid(uv.to(texture.dtype))
    b, h, w, _ = grid.shape
    colors = F.grid_sample(
        texture[None],
        grid.reshape(1, b * h, w, 2),
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )
    colors = colors.reshape(3, b, h, w).transpose(0, 1)
    if shade is not None:
        colors = colors * shade[:, None].to(colors.dtype)
    return composite(colors, mask, background, factor)


@torch.no_grad()
def fill_gutters(texture: torch.Tensor, covered: torch.Tensor) -> torch.Tensor:
    """Fill texels outside every UV chart (``covered`` False) from the charts, by push-pull.

    Texels no view ever sees keep whatever the optimiser left there; filling them with the colour of
    the nearest charts stops bilinear filtering and mip-mapping in other renderers from bleeding
    unrelated colours into the seams.
    """
    x = texture[None].float()
    m = covered[None, None].to(x)
    pyramid = [(x * m, m)]
    while min(pyramid[-1][0].shape[-2:]) > 1:
        c, w = pyramid[-1]
        pyramid.append((F.avg_pool2d(c, 2, ceil_mode=True), F.avg_pool2d(w, 2, ceil_mode=True)))
    c, w = pyramid[-1]
    filled = c / w.clamp_min(1e-8)
    for c, w in reversed(pyramid[:-1]):
        up = F.interpolate(filled, size=c.shape[-2:], mode="bilinear", align_corners=False)
        filled = torch.where(w > 0, c / w.clamp_min(1e-8), up)  # partial coverage: average of covered
    return torch.where(m > 0, x, filled)[0]
