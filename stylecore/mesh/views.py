"""Cameras around a mesh and the per-view maps StyleMesh renders from, raycast once with open3d.

A view is rendered by ``grid_sample(texture, uv)``, which is differentiable in the texture, so no
differentiable rasterizer is needed: everything geometric (which texel each pixel sees, how far, at
what angle) is fixed per view and computed here once, then cached on disk as ``.npz``.

Cameras live in the mesh's normalised frame (unit bounding sphere, see
:meth:`~stylecore.mesh.io.TexturedMesh.normalization`), so their parameters mean the same for any mesh.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from stylecore.errors import MeshError, ParameterError
from stylecore.fsio import atomic_open
from stylecore.mesh.io import TexturedMesh

__all__ = ["Camera", "ViewMaps", "cached_view_maps", "compute_view_maps", "orbit_cameras"]

_CACHE_VERSION = 1  # bump when the content of the maps changes
_UP_AXES = {"x": 0, "y": 1, "z": 2}


@dataclass(frozen=True)
class Camera:
    """A pinhole camera in the normalised mesh frame; ``fov_deg`` is the vertical field of view."""

    eye: tuple[float, float, float]
    target: tuple[float, float, float]
    up: tuple[float, float, float]
    fov_deg: float = 40.0


def fit_distance(fov_deg: float) -> float:
    """Distance from which the unit bounding sphere just fills the vertical field of view."""
    return 1.0 / math.sin(math.radians(fov_deg) / 2)


def orbit_cameras(
    n_azimuth: int = 8,
    elevations: Sequence[float] = (-20.0, 15.0, 50.0),
    distances: Sequence[float] = (1.0, 0.6),
    *,
    fov_deg: float = 40.0,
    jitter: bool = True,
    seed: int = 0,
    up_axis: str = "y",
) -> list[Camera]:
    """Rings of cameras looking at the object: ``n_azimuth`` per elevation (degrees) per distance.

    ``distances`` are multiples of :func:`fit_distance`: 1 frames the whole object, smaller values are
    close-ups whose higher texel density the finest pyramid levels need. With ``jitter`` each camera
    is moved by a seeded random offset (azimuth within its slot, elevation +-7.5 degrees, distance
    +-10 %, aim point within 0.25 of the centre for close-ups) so the views do not sample the
    texture on one fixed lattice of pixel positions.
    """
    if n_azimuth < 1 or not elevations or not distances:
        raise ParameterError("orbit_cameras needs n_azimuth >= 1 and at least one elevation and distance")
    if up_axis not in _UP_AXES:
        raise ParameterError(f"up_axis must be one of {sorted(_UP_AXES)}, got {up_axis!r}")
    if any(d <= 0 for d in distances) or not 1.0 <= fov_deg <= 150.0:
        raise ParameterError("distances must be > 0 and fov_deg in [1, 150]")
    rng = np.random.default_rng(seed)
    up = np.zeros(3)
    up[_UP_AXES[up_axis]] = 1.0
    # Two horizontal axes completing a right-handed frame with the up axis.
    a = np.roll(up, 1)
    b = np.cross(up, a)
    cams: list[Camera] = []
    for dist in distances:
        for el in elevations:
            for i in range(n_azimuth):
                az = 2 * math.pi * (i + (rng.uniform(-0.5, 0.5) if jitter else 0.0)) / n_azimuth
                e = math.radians(float(np.clip(el + (rng.uniform(-7.5, 7.5) if jitter else 0.0), -85, 85)))
                d = dist * fit_distance(fov_deg) * (rng.uniform(0.9, 1.1) if jitter else 1.0)
                direction = math.cos(e) * (math.cos(az) * a + math.sin(az) * b) + math.sin(e) * up
                target = rng.uniform(-0.25, 0.25, 3) if (jitter and dist < 1.0) else np.zeros(3)
                eye = target + d * direction
                cams.append(Camera(_tup(eye), _tup(target), _tup(up), float(fov_deg)))
    return cams


def _tup(x: np.ndarray) -> tuple[float, float, float]:
    return (float(x[0]), float(x[1]), float(x[2]))


@dataclass(frozen=True, eq=False)
class ViewMaps:
    """Per-pixel maps of N views, each (N, H, W[, 2]); pixels that miss the mesh have ``mask`` False.

    ``uv`` is the interpolated texture coordinate (OBJ convention), ``depth`` the distance along the
    camera's optical axis (normalised units), ``cos`` the |cosine| between view ray and face normal.
    """

    uv: np.ndarray  # (N, H, W, 2) float32
    depth: np.ndarray  # (N, H, W) float32, 0 where missed
    cos: np.ndarray  # (N, H, W) float32, 0 where missed
    mask: np.ndarray  # (N, H, W) bool
    cameras: tuple[Camera, ...]

    @property
    def n_views(self) -> int:
        return int(self.uv.shape[0])

    @property
    def resolution(self) -> tuple[int, int]:
        return int(self.uv.shape[1]), int(self.uv.shape[2])

    def subset(self, keep: np.ndarray) -> ViewMaps:
        idx = np.flatnonzero(keep)
        cams = tuple(self.cameras[i] for i in idx)
        return ViewMaps(self.uv[idx], self.depth[idx], self.cos[idx], self.mask[idx], cams)


def camera_rays(camera: Camera, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit ray directions (H, W, 3) through the pixel centres, and the optical axis (3,)."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (camera.eye, camera.target, camera.up))
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-8:  # looking straight along the up axis
        right = np.cross(forward, np.roll(up, 1))
    right /= np.linalg.norm(right)
    true_up = np.cross(right, forward)
    half = math.tan(math.radians(camera.fov_deg) / 2)
    xs = ((np.arange(width) + 0.5) / width * 2 - 1) * half * width / height
    ys = (1 - (np.arange(height) + 0.5) / height * 2) * half  # row 0 is the top of the image
    dirs = forward + xs[None, :, None] * right + ys[:, None, None] * true_up
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    return dirs.astype(np.float32), forward


def compute_view_maps(
    mesh: TexturedMesh, cameras: Sequence[Camera], resolution: int | tuple[int, int]
) -> ViewMaps:
    """Raycast every camera at ``resolution`` (square int or (H, W)) and interpolate UV/depth/angle maps."""
    import open3d as o3d

    h, w = (resolution, resolution) if isinstance(resolution, int) else resolution
    if h < 1 or w < 1:
        raise ParameterError(f"resolution must be positive, got {resolution}")
    verts = mesh.normalized_vertices()
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(verts), o3d.core.Tensor(mesh.triangles.astype(np.uint32)))
    tri_uvs = mesh.triangle_uvs
    a, b, c = (verts[mesh.triangles[:, i]] for i in range(3))
    normals = np.cross(b - a, c - a)
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-20)

    n = len(cameras)
    uv = np.zeros((n, h, w, 2), np.float32)
    depth = np.zeros((n, h, w), np.float32)
    cos = np.zeros((n, h, w), np.float32)
    mask = np.zeros((n, h, w), bool)
    for i, cam in enumerate(cameras):
        dirs, forward = camera_rays(cam, h, w)
        rays = np.concatenate([np.broadcast_to(np.asarray(cam.eye, np.float32), dirs.shape), dirs], axis=-1)
        hit = scene.cast_rays(o3d.core.Tensor(np.ascontiguousarray(rays)))
        t = hit["t_hit"].numpy()
        ok = np.isfinite(t)
        prim = hit["primitive_ids"].numpy()[ok].astype(np.int64)
        bary = hit["primitive_uvs"].numpy()[ok]
        b1, b2 = bary[:, :1], bary[:, 1:2]
        # Embree's convention (checked in tests): p = (1 - u - v) p0 + u p1 + v p2.
        corners = tri_uvs[prim]
        uv[i][ok] = (1 - b1 - b2) * corners[:, 0] + b1 * corners[:, 1] + b2 * corners[:, 2]
        depth[i][ok] = t[ok] * (dirs[ok] @ forward.astype(np.float32))
        # |cos|: plain meshes are not consistently oriented, and a back face seen is still surface.
        cos[i][ok] = np.abs(np.einsum("nk,nk->n", normals[prim], dirs[ok]))
        mask[i] = ok
    return ViewMaps(uv, depth, cos, mask, tuple(cameras))


def view_cache_key(mesh: TexturedMesh, cameras: Sequence[Camera], resolution: int | tuple[int, int]) -> str:
    """Hash of what the maps depend on: geometry and UVs (not the texture), cameras, resolution.

    Hashing the arrays rather than the file bytes also covers meshes built in memory and xatlas
    unwraps (whose UVs are not in the file).
    """
    h = hashlib.sha256()
    for arr in (mesh.vertices, mesh.triangles, mesh.uvs, mesh.uv_triangles):
        h.update(np.ascontiguousarray(arr).tobytes())
        h.update(str(arr.shape).encode())
    params = {"v": _CACHE_VERSION, "res": resolution, "cams": [asdict(c) for c in cameras]}
    h.update(json.dumps(params, sort_keys=True).encode())
    return h.hexdigest()[:32]


def cached_view_maps(
    mesh: TexturedMesh,
    cameras: Sequence[Camera],
    resolution: int | tuple[int, int],
    cache_dir: str | Path | None,
) -> ViewMaps:
    """:func:`compute_view_maps` through an ``.npz`` cache in ``cache_dir`` (None: no cache).

    A cache file that cannot be read is recomputed and replaced; writes are atomic.
    """
    if cache_dir is None:
        return compute_view_maps(mesh, cameras, resolution)
    path = Path(cache_dir) / f"views-{view_cache_key(mesh, cameras, resolution)}.npz"
    if path.is_file():
        try:
            with np.load(path) as data:
                return ViewMaps(data["uv"], data["depth"], data["cos"], data["mask"], tuple(cameras))
        except (OSError, KeyError, ValueError):
            pass  # a damaged cache entry is only a lost speed-up
    maps = compute_view_maps(mesh, cameras, resolution)
    try:
        with atomic_open(path) as fh:
            np.savez_compressed(fh, uv=maps.uv, depth=maps.depth, cos=maps.cos, mask=maps.mask)
    except OSError as exc:
        raise MeshError(path, f"cannot write view cache ({exc.strerror or exc})") from None
    return maps
