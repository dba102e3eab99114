"""Pictures of a textured mesh for people: a turntable strip and a before/after sheet.

Rendered with the same raycast maps and ``grid_sample`` path as the optimisation, so what is shown is
what was optimised, with a simple headlight shading so the shape reads.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from stylecore.errors import ParameterError
from stylecore.mesh.io import TexturedMesh
from stylecore.mesh.texture import render_texture
from stylecore.mesh.views import Camera, compute_view_maps, orbit_cameras

__all__ = ["before_after", "turntable", "turntable_cameras"]


def turntable_cameras(
    n: int = 8, *, elevation: float = 20.0, fov_deg: float = 40.0, up_axis: str = "y", distance: float = 1.05
) -> list[Camera]:
    """``n`` cameras evenly around the up axis at one elevation, framing the whole object."""
    cams = orbit_cameras(n, (elevation,), (distance,), fov_deg=fov_deg, jitter=False, up_axis=up_axis)
    # orbit_cameras starts at azimuth 0; a quarter turn shows the object's front first for y-up meshes.
    return cams[n // 4 :] + cams[: n // 4] if n >= 4 else cams


def turntable(
    mesh: TexturedMesh,
    texture: torch.Tensor | None = None,
    *,
    n: int = 8,
    size: int = 256,
    elevation: float = 20.0,
    fov_deg: float = 40.0,
    up_axis: str = "y",
    shade: float = 0.35,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    supersample: int = 2,
) -> torch.Tensor:
    """A strip (3, size, n * size) of ``n`` views around the mesh, ``texture`` defaulting to its own.

    ``shade`` in [0, 1] is how much a headlight (cos of the view angle) darkens the colours; 0 is flat.
    """
    if n < 1 or size < 8 or not 0.0 <= shade <= 1.0:
        raise ParameterError("turntable needs n >= 1, size >= 8 and shade in [0, 1]")
    tex = (mesh.texture if texture is None else texture).float().cpu()
    cams = turntable_cameras(n, elevation=elevation, fov_deg=fov_deg, up_axis=up_axis)
    maps = compute_view_maps(mesh, cams, size * supersample)
    light = torch.from_numpy(maps.cos)
    frames = render_texture(
        tex,
        torch.from_numpy(maps.uv),
        torch.from_numpy(maps.mask),
        background,
        supersample,
        shade=(1 - shade) + shade * light,
    )
    return torch.cat(list(frames), dim=2).clamp(0, 1)


def before_after(
    mesh: TexturedMesh,
    stylized: torch.Tensor,
    *,
    style: torch.Tensor | None = None,
    n: int = 4,
    size: int = 256,
    **turntable_kwargs: object,
) -> torch.Tensor:
    """Two rows (original texture above, ``stylized`` below) of ``n`` views; the style image at the left."""
    top = turntable(mesh, None, n=n, size=size, **turntable_kwargs)  # type: ignore[arg-type]
    bottom = turntable(mesh, stylized, n=n, size=size, **turntable_kwargs)  # type: ignore[arg-type]
    sheet = torch.cat([top, bottom], dim=1)
    if style is None:
        return sheet
    h, w = style.shape[-2:]
    scale = min(2 * size / h, size / w)
    thumb = F.interpolate(
        style[None].float().cpu(),
        size=(max(1, math.floor(h * scale)), max(1, math.floor(w * scale))),
        mode="bilinear",
        antialias=True,
        align_corners=False,
    )[0]
    column = torch.ones(3, 2 * size, size)
    top_off, left_off = (2 * size - thumb.shape[1]) // 2, (size - thumb.shape[2]) // 2
    column[:, top_off : top_off + thumb.shape[1], left_off : left_off + thumb.shape[2]] = thumb
    return torch.cat([column, sheet], dim=2)
