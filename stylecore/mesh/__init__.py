"""StyleMesh: style a textured mesh by optimising its UV texture from many raycast views.

Typical use (a manifest ``mesh`` job does the same):

mesh = load_mesh("spot/cow.obj")                       # OBJ+MTL+texture, PLY, GLB; xatlas unwrap if no UVs
result = stylize_mesh(mesh, MeshStyleConfig(styles=[Path("starry_night.jpg")]), cache_dir=...)
write_obj(mesh, result.texture, out_dir, "cow_starry")  # OBJ + MTL + PNG, atomic
write_image(turntable(mesh, result.texture), out_dir / "turntable.png")
"""

from stylecore.mesh.io import TexturedMesh, load_mesh, texel_coverage, unwrap, write_obj
from stylecore.mesh.optimize import MeshStyleConfig, MeshStyleResult, stylize_mesh
from stylecore.mesh.outputs import before_after, turntable, turntable_cameras
from stylecore.mesh.texture import TexturePyramid, fill_gutters, render_texture
from stylecore.mesh.views import Camera, ViewMaps, cached_view_maps, compute_view_maps, orbit_cameras

__all__ = [
    "Camera",
    "MeshStyleConfig",
    "MeshStyleResult",
    "TexturePyramid",
    "TexturedMesh",
    "ViewMaps",
    "before_after",
    "cached_view_maps",
    "compute_view_maps",
    "fill_gutters",
    "load_mesh",
    "orbit_cameras",
    "render_texture",
    "stylize_mesh",
    "texel_coverage",
    "turntable",
    "turntable_cameras",
    "unwrap",
    "write_obj",
]
