"""StyleMesh: raycast view maps, texture pyramid, mesh I/O and errors, unwrap, a short optimisation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from stylecore.errors import MeshError, ParameterError
from stylecore.imageio import write_image
from stylecore.mesh import (
    Camera,
    MeshStyleConfig,
    TexturedMesh,
    TexturePyramid,
    before_after,
    cached_view_maps,
    compute_view_maps,
    fill_gutters,
    load_mesh,
    orbit_cameras,
    render_texture,
    stylize_mesh,
    turntable,
    write_obj,
)
from stylecore.mesh.texture import level_weights, uv_to_grid
from tests.conftest import SHARED, needs_shared, synthetic_image
from tests.gltf import write_glb

o3d = pytest.importorskip("open3d")

# A unit quad in the z = 0 plane whose UVs are a non-symmetric affine map of the position, so a
# swapped or mis-ordered barycentric convention gives visibly wrong UVs.
QUAD_V = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], np.float32)
A = np.array([[0.3, 0.1], [0.05, 0.4]])
B = np.array([0.5, 0.45])


def shared_mesh(relative: str) -> Path:
    path = SHARED / "meshes" / relative
    if not path.is_file():
        pytest.skip(f"{path} is not in this copy of the shared datasets")
    return path


def quad_uv(xy: np.ndarray) -> np.ndarray:
    return xy @ A.T + B


def quad_mesh(texture: torch.Tensor | None = None) -> TexturedMesh:
    tris = np.array([[0, 1, 2], [0, 2, 3]])
    uvs = quad_uv(QUAD_V[:, :2]).astype(np.float32)
    tex = texture if texture is not None else synthetic_image(32, 32)
    return TexturedMesh(QUAD_V, tris, uvs, tris.copy(), tex)


def sphere_obj(tmp_path: Path, *, colors: bool = False) -> Path:
    sphere = o3d.geometry.TriangleMesh.create_sphere(radius=2.0, resolution=8)
    if colors:
        sphere.paint_uniform_color([0.9, 0.1, 0.1])
    path = tmp_path / "sphere.obj"
    assert o3d.io.write_triangle_mesh(str(path), sphere, write_triangle_uvs=False, write_vertex_normals=False)
    return path


# ------------------------------------------------------------------------------------------------ views


def test_raycast_maps_of_a_quad_seen_head_on_match_hand_computation():
    mesh = quad_mesh()
    # Normalised frame: the quad's bounding sphere has radius sqrt(2), so corners go to +-1/sqrt(2).
    cam = Camera(eye=(0.0, 0.0, 2.0), target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0), fov_deg=90.0)
    n = 64
    maps = compute_view_maps(mesh, [cam], n)
    ndc = (np.arange(n) + 0.5) / n * 2 - 1  # at depth 2 with a 90 degree fov the image spans +-2
    inside = np.abs(ndc * 2) <= 1 / math.sqrt(2)
    np.testing.assert_array_equal(maps.mask[0], inside[:, None] & inside[None, :])
    assert maps.mask[0, 21:43, 21:43].all() and not maps.mask[0, 20].any() and not maps.mask[0, :, 43].any()
    hit = maps.mask[0]
    np.testing.assert_allclose(maps.depth[0][hit], 2.0, atol=1e-5)
    # cos(ray, normal) of a perspective ray through (x, y) on the plane at depth 2: 2 / |(x, y, 2)|.
    x, y = np.meshgrid(ndc * 2, -ndc * 2)
    np.testing.assert_allclose(maps.cos[0][hit], (2 / np.sqrt(x**2 + y**2 + 4))[hit], atol=1e-6)
    assert maps.cos[0, 31:33, 31:33].min() > 0.999  # head-on at the centre
    assert (maps.depth[0][~hit] == 0).all()
    for i, j in [(21, 21), (30, 40), (42, 25), (32, 32)]:
        world = np.array([ndc[j] * 2, -ndc[i] * 2]) * math.sqrt(2)  # back to the file's coordinates
        np.testing.assert_allclose(maps.uv[0, i, j], quad_uv(world), atol=1e-5)


def test_render_follows_the_obj_v_convention():
    tex = torch.zeros(3, 16, 16)
    tex[0, :8] = 1.0  # top half of the image (v > 0.5) red, bottom half blue
    tex[2, 8:] = 1.0
    uv = torch.tensor([[[[0.5, 0.9], [0.5, 0.1]]]])  # (1, 1, 2, 2)
    out = render_texture(tex, uv, torch.ones(1, 1, 2, dtype=torch.bool))
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(out[0, :, 0, 1], torch.tensor([0.0, 0.0, 1.0]))
    torch.testing.assert_close(uv_to_grid(torch.tensor([0.0, 1.0])), torch.tensor([-1.0, -1.0]))


def test_view_maps_are_cached_and_keyed(tmp_path):
    mesh = quad_mesh()
    cams = orbit_cameras(2, (10.0,), (1.0,), seed=3, up_axis="z")
    a = cached_view_maps(mesh, cams, 24, tmp_path)
    files = list(tmp_path.glob("views-*.npz"))
    assert len(files) == 1
    b = cached_view_maps(mesh, cams, 24, tmp_path)
    np.testing.assert_array_equal(a.uv, b.uv)
    np.testing.assert_array_equal(a.mask, b.mask)
    cached_view_maps(mesh, cams, 32, tmp_path)
    assert len(list(tmp_path.glob("views-*.npz"))) == 2
    assert orbit_cameras(2, (10.0,), (1.0,), seed=3) == orbit_cameras(2, (10.0,), (1.0,), seed=3)
    assert orbit_cameras(2, (10.0,), (1.0,), seed=3) != orbit_cameras(2, (10.0,), (1.0,), seed=4)


# ------------------------------------------------------------------------------------------------ pyramid


def test_pyramid_starts_at_the_texture_and_every_level_gets_gradients():
    init = synthetic_image(64, 64)
    pyr = TexturePyramid(init, levels=4)
    assert pyr.n_levels == 4
    torch.testing.assert_close(pyr.compose(), init, atol=1e-5, rtol=0)
    maps = compute_view_maps(quad_mesh(init), [Camera((0.0, 0.0, 1.2), (0.0, 0.0, 0.0), (0.0, 1.0, 0.0))], 64)
    uv, mask = torch.from_numpy(maps.uv), torch.from_numpy(maps.mask)
    weights = level_weights(uv, mask, pyr.size, pyr.n_levels)
    assert weights.shape == (1, 4, 64, 64) and (weights[:, -1] == 1).all()
    target = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    ((pyr.sample(uv_to_grid(uv), weights) - target) ** 2 * mask[:, None]).sum().backward()
    for j, level in enumerate(pyr.levels):
        assert level.grad is not None and level.grad.abs().sum() > 0, f"level {j} got no gradient"


def test_far_views_fade_out_the_fine_levels():
    ramp = torch.linspace(0, 1, 22)
    uv = torch.stack(torch.meshgrid(ramp, ramp, indexing="xy"), -1)[None]
    w = level_weights(uv, torch.ones(1, 22, 22, dtype=torch.bool), (64, 64), 4)  # ~3 texels per pixel
    assert (w[:, 0] == 0).all() and (w[:, 2:] == 1).all()
    torch.testing.assert_close(w[:, 1], torch.full_like(w[:, 1], 2 - math.log2(64 / 21)))


def test_clamp_projects_the_summed_texture_into_range():
    pyr = TexturePyramid(synthetic_image(32, 32), levels=3)
    with torch.no_grad():
        pyr.levels[2].add_(2.0)
    pyr.clamp_()
    with torch.no_grad():
        out = pyr.compose()
    assert float(out.min()) >= -1e-6 and float(out.max()) <= 1 + 1e-6


def test_fill_gutters_keeps_charts_and_fills_the_rest():
    tex = torch.zeros(3, 16, 16)
    tex[0] = 1.0
    covered = torch.zeros(16, 16, dtype=torch.bool)
    covered[4:8, 4:8] = True
    tex[:, ~covered] = 0.0
    out = fill_gutters(tex, covered)
    torch.testing.assert_close(out[:, covered], tex[:, covered])
    torch.testing.assert_close(out[:, 0, 0], torch.tensor([0.0, 0.0, 0.0]).new_tensor([1.0, 0.0, 0.0]))


# ------------------------------------------------------------------------------------------------ I/O


def test_write_obj_round_trip_keeps_counts_and_geometry(tmp_path):
    mesh = load_mesh(sphere_obj(tmp_path), atlas_size=64)
    assert mesh.unwrapped
    path = write_obj(mesh, mesh.texture, tmp_path / "out", "ball")
    assert {p.name for p in path.parent.iterdir()} == {"ball.obj", "ball.mtl", "ball.png"}
    again = load_mesh(path)
    assert not again.unwrapped
    assert (again.n_vertices, again.n_triangles, len(again.uvs)) == (
        mesh.n_vertices,
        mesh.n_triangles,
        len(mesh.uvs),
    )
    np.testing.assert_array_equal(again.vertices, mesh.vertices)
    np.testing.assert_array_equal(again.triangles, mesh.triangles)
    np.testing.assert_array_equal(again.uvs, mesh.uvs)
    np.testing.assert_array_equal(again.uv_triangles, mesh.uv_triangles)
    torch.testing.assert_close(again.texture, mesh.texture, atol=1 / 255, rtol=0)
    assert write_obj(again, None, tmp_path / "out2", "ball").read_bytes() == path.read_bytes()


def test_mesh_without_uvs_gets_an_unwrap_with_baked_vertex_colours(tmp_path):
    mesh = load_mesh(sphere_obj(tmp_path, colors=True), atlas_size=64)
    assert mesh.unwrapped and mesh.uv_triangles.shape == (mesh.n_triangles, 3)
    assert mesh.uvs.min() >= 0 and mesh.uvs.max() <= 1
    assert tuple(mesh.texture.shape) == (3, 64, 64)
    # Every corner's UV lands on a texel baked with the painted red.
    uv = mesh.triangle_uvs.reshape(-1, 2)
    cols = np.clip((uv[:, 0] * 64).astype(int), 0, 63)
    rows = np.clip(((1 - uv[:, 1]) * 64).astype(int), 0, 63)
    np.testing.assert_allclose(mesh.texture[:, rows, cols].T.numpy(), [[0.9, 0.1, 0.1]] * len(uv), atol=1e-4)


def test_obj_quads_are_triangulated_and_texture_found_by_name(tmp_path):
    (tmp_path / "q.obj").write_text(
        "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nf 1/1 2/2 3/3 4/4\n"
    )
    write_image(torch.full((3, 8, 8), 0.25), tmp_path / "q_texture.png")
    mesh = load_mesh(tmp_path / "q.obj")
    assert mesh.n_triangles == 2 and len(mesh.uvs) == 4 and tuple(mesh.texture.shape) == (3, 8, 8)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.obj", "", "empty file"),
        ("garbage.obj", "this is not a mesh\njust some text\n", "no vertices"),
        ("binary.obj", b"\x00\x01\x02\xff" * 64, "not a text OBJ"),
        ("novt.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\n", "zero triangles"),
        ("degenerate.obj", "v 0 0 0\nv 0 0 0\nv 1 1 1\nf 1 2 3\nf 2 1 3\n", "degenerate"),
        ("badindex.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 7\n", "out of range"),
        ("nan.obj", "v nan 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "non-finite"),
        ("badnum.obj", "v 0 zero 0\nf 1 1 1\n", "line 1"),
        ("garbage.ply", "ply\nformat ascii 1.0\nnonsense\n", "no triangles"),
        ("mesh.xyz", "1 2 3\n", "unsupported mesh format"),
    ],
)
def test_bad_meshes_raise_mesh_error_naming_the_file(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(MeshError) as info:
        load_mesh(path)
    assert info.value.path == str(path)
    assert reason in str(info.value)


def test_missing_mesh_and_missing_texture_are_named(tmp_path):
    with pytest.raises(MeshError, match="file not found"):
        load_mesh(tmp_path / "nope.obj")
    (tmp_path / "m.mtl").write_text("newmtl a\nKd 1 1 1\nmap_Kd textures/skin.png\n")
    (tmp_path / "m.obj").write_text(
        "mtllib m.mtl\nusemtl a\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nf 1/1 2/2 3/3\n"
    )
    with pytest.raises(MeshError, match=r"texture file 'textures/skin.png' named by m.mtl not found") as info:
        load_mesh(tmp_path / "m.obj")
    assert info.value.path == str(tmp_path / "m.obj")


@pytest.mark.data
@needs_shared
def test_spot_loads_with_its_counts_and_texture():
    mesh = load_mesh(shared_mesh("spot_textured/cow.obj"))
    assert (mesh.n_vertices, mesh.n_triangles, len(mesh.uvs)) == (2930, 5856, 3225)
    assert tuple(mesh.texture.shape) == (3, 1024, 1024) and not mesh.unwrapped
    assert np.linalg.norm(mesh.normalized_vertices(), axis=1).max() == pytest.approx(1.0, abs=1e-5)


def test_glb_with_embedded_texture_loads_like_the_same_obj(tmp_path):
    """A textured GLB (written to the glTF spec, v down) reads back with the OBJ's UVs and an upright
    texture: open3d converts the UVs to v up and stores images bottom row first, which load_mesh undoes."""
    tex = synthetic_image(32, 48, seed=3)
    quad = quad_mesh(tex)
    image = (tex.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    path = write_glb(tmp_path / "quad.glb", quad.vertices, quad.triangles, quad.triangle_uvs, image)
    mesh = load_mesh(path)
    assert (mesh.n_triangles, mesh.unwrapped) == (quad.n_triangles, False)
    np.testing.assert_allclose(mesh.vertices[mesh.triangles], quad.vertices[quad.triangles], atol=1e-6)
    np.testing.assert_allclose(mesh.triangle_uvs, quad.triangle_uvs, atol=1e-6)
    assert torch.allclose(mesh.texture, (tex * 255).round() / 255, atol=1e-6)


def test_corrupt_glb_is_a_mesh_error(tmp_path):
    path = tmp_path / "broken.glb"
    path.write_bytes(b"glTF" + b"\x02\x00\x00\x00" + b"\xff" * 40)
    with pytest.raises(MeshError, match="no triangles could be read") as info:
        load_mesh(path)
    assert info.value.path == str(path)


@pytest.mark.data
@needs_shared
def test_stanford_bunny_ply_gets_an_unwrap():
    mesh = load_mesh(shared_mesh("stanford_bunny/bun_zipper_res3.ply"), atlas_size=256)
    assert mesh.unwrapped and mesh.n_triangles > 1000 and tuple(mesh.texture.shape) == (3, 256, 256)
    assert mesh.triangle_uvs.min() >= 0.0 and mesh.triangle_uvs.max() <= 1.0


# ------------------------------------------------------------------------------------------- optimisation


def test_short_optimisation_reduces_the_style_loss(tmp_path, random_encoder):
    mesh = load_mesh(sphere_obj(tmp_path), atlas_size=64)
    cfg = MeshStyleConfig(
        texture_size=64,
        pyramid_levels=3,
        render_size=40,
        supersample=1,
        n_azimuth=2,
        elevations=(10.0,),
        distances=(1.0,),
        iterations=10,
        views_per_step=2,  # every view every step: the loss curve is not view-sampling noise
        content_weight=0.0,
        style_weight=1.0,
        lr=0.05,
        device="cpu",
    )
    steps: list[int] = []
    result = stylize_mesh(
        mesh,
        cfg,
        style_images=[synthetic_image(48, 48, seed=5)],
        encoder=random_encoder,
        cache_dir=tmp_path / "cache",
        on_progress=lambda step, losses: steps.append(step),
    )
    assert steps == list(range(1, 11)) and len(result.history) == 10
    assert result.history[-1]["style"] < 0.7 * result.history[0]["style"]
    assert tuple(result.texture.shape) == (3, 64, 64)
    assert float(result.texture.min()) >= 0 and float(result.texture.max()) <= 1
    assert result.n_views == 2 and result.seconds > 0 and result.device == "cpu"
    assert result.mesh.texture is result.texture or torch.equal(result.mesh.texture, result.texture)
    strip = turntable(result.mesh, n=3, size=32)
    assert tuple(strip.shape) == (3, 32, 96)
    sheet = before_after(mesh, result.texture, style=synthetic_image(40, 30), n=2, size=32)
    assert tuple(sheet.shape) == (3, 64, 96)


def test_config_rejects_inconsistent_parameters():
    with pytest.raises(ValueError, match="one weight per style"):
        MeshStyleConfig(styles=[Path("a.jpg")], style_weights=[0.5, 0.5])
    with pytest.raises(ValueError):
        MeshStyleConfig(distances=(0.0,))
    with pytest.raises(ValueError):
        MeshStyleConfig(unknown=1)


def test_stylize_mesh_rejects_bad_inputs_before_any_work(random_encoder):
    mesh = quad_mesh()
    with pytest.raises(ParameterError, match="at least one style"):
        stylize_mesh(mesh, MeshStyleConfig(device="cpu"), encoder=random_encoder)
    with pytest.raises(ParameterError, match="2 style_weights for 1 style images"):
        cfg = MeshStyleConfig(device="cpu", style_weights=[0.5, 0.5])
        stylize_mesh(mesh, cfg, style_images=[synthetic_image()], encoder=random_encoder)


def test_closer_views_are_matched_to_a_larger_style_scale():
    from stylecore.mesh.optimize import _ViewTensors

    mesh = quad_mesh()
    cams = [Camera((0.0, 0.0, d), (0.0, 0.0, 0.0), (0.0, 1.0, 0.0)) for d in (1.5, 3.0, 6.0)]
    maps = compute_view_maps(mesh, cams, 32)
    cfg = MeshStyleConfig(supersample=2, depth_scales=(0.5, 1.0, 2.0))
    views = _ViewTensors(maps, cfg, torch.device("cpu"))
    assert views.scale_index.tolist() == [2, 1, 0]  # median distance 3: x2, x1, x0.5
    assert views.weights.shape == (3, 1, 16, 16)
    cfg_flat = MeshStyleConfig(depth_aware=False, depth_scales=(0.5, 1.0, 2.0))
    assert _ViewTensors(maps, cfg_flat, torch.device("cpu")).scale_index.tolist() == [1, 1, 1]
