"""Tests of the differentiable renderer against an independent ray-casting reference.

Set TEXT2MESH_TEST_DUMP=<folder> to save the pictures a failing comparison looked at.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from text2mesh.render import (
    Renderer,
    antialias,
    camera_centers,
    face_neighbors,
    face_orientation,
    gather_face_values,
    interpolate,
    interpolate_packed,
    is_closed_and_oriented,
    mesh_edges,
    pixel_normals,
    rasterize,
    sh_lighting,
    transform_vertices,
    unpack,
)
from text2mesh.views import Cameras, cameras_from_angles

rasterize_module = importlib.import_module("text2mesh.render.rasterize")

# ----------------------------------------------------------------------------- helpers


pytestmark = pytest.mark.usefixtures("one_thread")


def dump(name: str, **images: np.ndarray) -> None:
    """Save images ([H, W], [H, W, 3] or [3, H, W], values in [0, 1] or ids) when asked to."""
    folder = os.environ.get("TEXT2MESH_TEST_DUMP")
    if not folder:
        return
    from PIL import Image

    Path(folder).mkdir(parents=True, exist_ok=True)
    for key, image in images.items():
        image = np.asarray(image, dtype=np.float64)
        if image.ndim == 3 and image.shape[0] == 3:
            image = image.transpose(1, 2, 0)
        if image.ndim == 2 and image.max() > 1:  # ids: spread them over grey levels
            image = (image + 1) / (image.max() + 1)
        Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)).save(
            Path(folder) / f"{name}_{key}.png"
        )


def ray_cast(vertices: torch.Tensor, faces: torch.Tensor, cameras: Cameras, index: int):
    """Brute-force reference: a ray per pixel centre against every triangle (Moller-Trumbore).

    Returns:
        face [H, W] int (-1 background), depth [H, W] (view depth, 0 background),
        bary [H, W, 3] (barycentrics of the hit point, i.e. perspective-correct).
    """
    height, width = cameras.image_size
    w2c = cameras.world_to_camera[index].double().numpy()
    proj = cameras.projection[index].double().numpy()
    cam = vertices.detach().double().numpy() @ w2c[:3, :3].T + w2c[:3, 3]
    near = proj[2, 3] / (proj[2, 2] - 1)
    far = proj[2, 3] / (proj[2, 2] + 1)
    xs = (2 * np.arange(width) + 1) / width - 1
    ys = 1 - (2 * np.arange(height) + 1) / height
    grid_x, grid_y = np.meshgrid(xs, ys)
    ray = np.stack([grid_x / proj[0, 0], grid_y / proj[1, 1], -np.ones_like(grid_x)], -1)
    ray = ray.reshape(-1, 1, 3)
    tri = cam[faces.numpy()]
    v0, e1, e2 = tri[:, 0], tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    pvec = np.cross(ray, e2[None])
    det = (e1[None] * pvec).sum(-1)
    ok = np.abs(det) > 1e-12
    inv = np.where(ok, 1 / np.where(ok, det, 1), 0)
    tvec = -v0[None]
    u = (tvec * pvec).sum(-1) * inv
    qvec = np.cross(tvec, e1[None])
    v = (ray * qvec).sum(-1) * inv
    t = (e2[None] * qvec).sum(-1) * inv
    hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t >= near) & (t <= far)
    t = np.where(hit, t, np.inf)
    face = t.argmin(1)
    depth = t.min(1)
    covered = np.isfinite(depth)
    rows = np.arange(face.size)
    bary = np.stack([1 - u[rows, face] - v[rows, face], u[rows, face], v[rows, face]], -1)
    return (
        np.where(covered, face, -1).reshape(height, width),
        np.where(covered, depth, 0).reshape(height, width),
        np.where(covered[:, None], bary, 0).reshape(height, width, 3),
    )


def bumpy_sphere(subdivisions: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """An icosphere with random radial noise (so faces differ in size and depth)."""
    mesh = trimesh.creation.icosphere(subdivisions)
    gen = torch.Generator().manual_seed(seed)
    vertices = torch.tensor(mesh.vertices, dtype=torch.float32)
    vertices = vertices * (1 + 0.2 * torch.rand(len(vertices), 1, generator=gen))
    return vertices, torch.tensor(mesh.faces, dtype=torch.int64)


def ellipsoid(subdivisions: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """A convex mesh: its only silhouettes are against the background."""
    mesh = trimesh.creation.icosphere(subdivisions)
    vertices = torch.tensor(mesh.vertices, dtype=torch.float32) * torch.tensor([1.0, 0.8, 0.9])
    return vertices, torch.tensor(mesh.faces, dtype=torch.int64)


def ground_plane(height: float = -0.3, size: float = 50.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two huge triangles that reach behind every camera (near-plane crossing)."""
    s = size
    vertices = torch.tensor(
        [[-s, height, -s], [s, height, -s], [s, height, s], [-s, height, s]], dtype=torch.float32
    )
    return vertices, torch.tensor([[0, 2, 1], [0, 3, 2]])


def merge(*meshes):
    vertices, faces, offset = [], [], 0
    for v, f in meshes:
        vertices.append(v)
        faces.append(f + offset)
        offset += len(v)
    return torch.cat(vertices), torch.cat(faces)


def front_camera(size=(32, 32), radius=2.0, fov=60.0):
    return cameras_from_angles(
        torch.tensor([math.pi / 2]),
        torch.tensor([0.0]),
        radius=radius,
        fov_degrees=fov,
        image_size=size,
    )


# ----------------------------------------------------------------------------- coverage & depth


SCENES = {
    "sphere": {"mesh": lambda: bumpy_sphere(2), "radius": 2.5, "size": (48, 64), "near": 0.05},
    "camera_inside": {
        "mesh": lambda: merge(ground_plane(), bumpy_sphere(2)),
        "radius": 0.9,
        "size": (40, 40),
        "near": 0.2,
    },
    "ground_and_sphere": {
        "mesh": lambda: merge(ground_plane(), bumpy_sphere(1, seed=3)),
        "radius": 2.0,
        "size": (40, 56),
        "near": 0.05,
    },
}


@pytest.mark.parametrize("scene", sorted(SCENES))
def test_coverage_and_depth_match_ray_casting(scene):
    spec = SCENES[scene]
    vertices, faces = spec["mesh"]()
    cameras = cameras_from_angles(
        torch.tensor([0.3, 1.9, 4.0]),
        torch.tensor([0.2, -0.1, 0.9]),
        radius=spec["radius"],
        image_size=spec["size"],
        near=spec["near"],
    )
    clip = transform_vertices(vertices, cameras)
    fragments = rasterize(clip, faces, cameras.image_size)
    for index in range(len(cameras)):
        ref_face, ref_depth, ref_bary = ray_cast(vertices, faces, cameras, index)
        ours = fragments.face_index[index].numpy()
        same_face = ours == ref_face
        coverage_agree = ((ours >= 0) == (ref_face >= 0)).mean()
        if same_face.mean() < 0.995 or coverage_agree < 0.995:
            dump(f"coverage_{scene}_{index}", ours=ours, reference=ref_face)
        assert coverage_agree >= 0.995
        assert same_face.mean() >= 0.995
        both = same_face & (ref_face >= 0)
        depth = fragments.depth[index].detach().numpy()
        np.testing.assert_allclose(depth[both], ref_depth[both], rtol=1e-4)
        bary = fragments.bary[index].detach().numpy()
        np.testing.assert_allclose(bary[both], ref_bary[both], atol=1e-4)


def test_chunked_rasterization_gives_the_same_image():
    vertices, faces = bumpy_sphere(2)
    cameras = cameras_from_angles(
        torch.tensor([0.5, 2.0]), torch.tensor([0.1, 0.4]), image_size=(40, 40)
    )
    clip = transform_vertices(vertices, cameras)
    whole = rasterize(clip, faces, (40, 40))
    chunked = rasterize(clip, faces, (40, 40), max_candidates=50)
    assert torch.equal(whole.face_index, chunked.face_index)
    assert (whole.face_index >= 0).any()


def test_views_rasterized_in_groups_give_the_same_fragments(monkeypatch):
    """A large mesh is depth-tested a few views at a time; the groups must not change anything,
    culled or not, with one camera inside the mesh (faces crossing its near plane)."""
    vertices, faces = bumpy_sphere(2)
    cameras = cameras_from_angles(
        torch.tensor([0.5, 2.0, 4.0]),
        torch.tensor([0.1, 0.4, -0.3]),
        radius=2.5,
        image_size=(40, 48),
        target=torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [2.3, 0.0, 0.0]]),
    )
    clip = transform_vertices(vertices, cameras)
    assert bool(((clip[2, :, 2] + clip[2, :, 3]) < 0).any())  # the third camera is inside
    orientation, back = face_orientation(vertices, faces, camera_centers(cameras.world_to_camera))
    options = [{}, {"orientation": orientation, "cull": back}]
    whole = [rasterize(clip, faces, (40, 48), **kw) for kw in options]
    for group_vertices in (1, 2 * vertices.shape[0]):  # one view a group, two views a group
        monkeypatch.setattr(rasterize_module, "_GROUP_VERTICES", group_vertices)
        for kw, expected in zip(options, whole, strict=True):
            grouped = rasterize(clip, faces, (40, 48), max_candidates=300, **kw)
            assert torch.equal(grouped.face_index, expected.face_index)
            assert torch.equal(grouped.bary, expected.bary)
            assert torch.equal(grouped.face_orientation, expected.face_orientation)
    assert (whole[0].face_index[2] >= 0).any()


def pixel_grid_clip_vertices(size: int, offset: tuple[float, float], seed: int = 0):
    """A flat grid seen head-on: one vertex per pixel centre (moved by ``offset`` pixels),
    one ring of vertices outside the image, random positive w (the same picture in 2D)."""
    coords = torch.arange(-1, size + 1, dtype=torch.float64)
    row, col = torch.meshgrid(coords + offset[1], coords + offset[0], indexing="ij")
    x = (2 * col + 1) / size - 1
    y = 1 - (2 * row + 1) / size
    gen = torch.Generator().manual_seed(seed)
    w = 1.5 + torch.rand(x.shape, generator=gen, dtype=torch.float64)
    clip = torch.stack([x * w, y * w, torch.zeros_like(w), w], -1).reshape(1, -1, 4)
    n = size + 2
    idx = torch.arange(n * n).reshape(n, n)
    tl, tr, bl, br = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    faces = torch.cat([torch.stack([tl, bl, tr], -1), torch.stack([tr, bl, br], -1)])
    return clip.float(), faces.reshape(-1, 3)


@pytest.mark.parametrize(
    "size, offset", [(224, (0.001, 0.0005)), (224, (0.0, 0.0)), (512, (0.01, 0.003))]
)
def test_closed_surface_has_no_holes_in_float32(size, offset):
    # pixel centres on or within a hair of vertices and shared edges: float32 rounding must
    # never leave a pixel between two neighbouring triangles uncovered
    clip, faces = pixel_grid_clip_vertices(size, offset)
    fragments = rasterize(clip, faces, (size, size))
    assert int((fragments.face_index < 0).sum()) == 0


def test_row_zero_is_the_top_and_x_grows_to_the_right():
    # a triangle in the upper-right quadrant seen from the front (+z, y up)
    vertices = torch.tensor([[0.1, 0.1, 0.0], [0.8, 0.1, 0.0], [0.1, 0.8, 0.0]])
    cameras = front_camera((32, 32))
    out = Renderer(antialias=False).render(
        vertices,
        torch.tensor([[0, 1, 2]]),
        cameras,
        torch.ones(3, 3),
        lighting="unlit",
        background=None,
    )
    alpha = out.alpha[0, 0]
    assert alpha[:16, 16:].sum() > 20
    assert alpha[16:, :].sum() == 0 and alpha[:, :16].sum() == 0


def test_triangle_covering_the_whole_screen_and_crossing_the_near_plane():
    vertices = torch.tensor(
        [[-100.0, -100.0, 1.0], [100.0, -100.0, 1.0], [0.0, 100.0, 1.0], [0.0, 0.0, 5.0]]
    )
    faces = torch.tensor([[0, 1, 2], [0, 1, 3]])  # the second one reaches behind the camera
    cameras = front_camera((24, 20), radius=2.0)
    out = Renderer().render(
        vertices,
        faces,
        cameras,
        torch.full((4, 3), 0.5),
        lighting="unlit",
        background=(0.0, 0.0, 0.0),
    )
    assert torch.all(out.alpha > 0.999)
    assert torch.isfinite(out.images).all()


def test_empty_view_and_degenerate_faces_render_background_with_zero_gradients():
    vertices = torch.tensor(
        [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 0.0]], requires_grad=True
    )
    faces = torch.tensor([[0, 1, 2], [0, 3, 3], [1, 1, 1]])  # collinear and repeated vertices
    colors = torch.full((4, 3), 0.3, requires_grad=True)
    cameras = cameras_from_angles(
        torch.tensor([math.pi / 2, -math.pi / 2]),
        torch.tensor([0.0, 0.0]),
        image_size=(16, 16),
        target=torch.tensor([0.0, 0.0, 100.0]),
    )  # second looks away
    out = Renderer().render(vertices, faces, cameras, colors, background=(0.2, 0.4, 0.6))
    assert torch.all(out.alpha == 0)
    assert torch.allclose(out.images[:, 1], torch.tensor(0.4))
    out.images.sum().backward()
    assert torch.all(vertices.grad == 0) and torch.all(colors.grad == 0)


@pytest.mark.parametrize("size", [(0, 8), (8, 20000)])
def test_image_sizes_outside_the_supported_range_are_refused(size):
    clip = torch.tensor([[[0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0]]])
    with pytest.raises(ValueError, match="image_size must be 1 to 16384 pixels a side"):
        rasterize(clip, torch.tensor([[0, 1, 2]]), size)


def test_empty_mesh():
    cameras = front_camera((8, 8))
    out = Renderer().render(
        torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.int64), cameras, torch.zeros(0, 3)
    )
    assert out.images.shape == (1, 3, 8, 8) and torch.all(out.images == 1)
    # no vertices at all, several views: still one (empty) orientation row per view
    fragments = rasterize(torch.zeros(3, 0, 4), torch.zeros(0, 3, dtype=torch.int64), (8, 6))
    assert fragments.face_orientation.shape == (3, 0)
    assert bool((fragments.face_index == -1).all()) and fragments.face_index.shape == (3, 8, 6)


# ----------------------------------------------------------------------------- colours & shading


def test_interpolated_colors_match_reference_away_from_edges():
    vertices, faces = ellipsoid()
    colors = (vertices * 0.4 + 0.5).clamp(0, 1)
    cameras = cameras_from_angles(
        torch.tensor([0.4, 2.5]), torch.tensor([0.3, -0.6]), image_size=(48, 48), radius=2.6
    )
    out = Renderer().render(
        vertices, faces, cameras, colors, lighting="unlit", background=(1.0, 1.0, 1.0)
    )
    for index in range(len(cameras)):
        ref_face, _, ref_bary = ray_cast(vertices, faces, cameras, index)
        ref = (colors.numpy()[faces.numpy()[ref_face]] * ref_bary[..., None]).sum(-2)
        ref[ref_face < 0] = 1.0
        covered = torch.from_numpy(ref_face >= 0)[None, None].float()
        interior = -torch.nn.functional.max_pool2d(-covered, 3, 1, 1)[0, 0] == 1  # erode
        ours = out.images[index].permute(1, 2, 0).detach().numpy()
        err = np.abs(ours - ref).max(-1)
        if err[interior.numpy()].max() > 1 / 255:
            dump(f"colors_{index}", ours=ours, reference=ref, error=err * 50)
        assert interior.sum() > 300
        assert err[interior.numpy()].max() <= 1 / 255


def test_sh_lighting_matches_text2mesh_formula():
    normals = torch.nn.functional.normalize(
        torch.randn(50, 3, generator=torch.Generator().manual_seed(0)), dim=1
    )
    expected = 0.28209479177 + 0.4886025119 * normals.sum(1)
    assert torch.allclose(sh_lighting(normals), expected, atol=1e-6)
    # normals as [3, N] rows (the renderer's packing) give the same, for any coefficients
    assert torch.allclose(sh_lighting(normals.t().contiguous(), dim=0), expected, atol=1e-6)
    second_order = torch.linspace(0.2, 1.0, 9)
    assert torch.allclose(
        sh_lighting(normals.t().contiguous(), second_order, dim=0),
        sh_lighting(normals, second_order),
        atol=1e-6,
    )
    # a face looking straight at the camera, grey 0.5 -> 0.5 * (0.2821 + 0.4886)
    vertices = torch.tensor([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 1.0, 0.0]])
    out = Renderer().render(
        vertices,
        torch.tensor([[0, 1, 2]]),
        front_camera((16, 16)),
        torch.full((3, 3), 0.5),
        lighting="sh",
    )
    assert torch.allclose(out.images[0, :, 8, 8], torch.tensor(0.5 * 0.7707), atol=1e-3)


def test_sh_shading_of_a_lit_sphere_matches_reference_normals():
    vertices, faces = ellipsoid()
    cameras = cameras_from_angles(torch.tensor([1.0]), torch.tensor([0.5]), image_size=(40, 40))
    out = Renderer().render(vertices, faces, cameras, torch.full_like(vertices, 0.8))
    ref_face, _, _ = ray_cast(vertices, faces, cameras, 0)
    w2c = cameras.world_to_camera[0]
    cam = vertices @ w2c[:3, :3].T + w2c[:3, 3]
    tri = cam[faces]
    normal = torch.nn.functional.normalize(
        torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), dim=1
    )
    shade = (0.8 * sh_lighting(normal)).clamp(0, 1).numpy()
    covered = torch.from_numpy(ref_face >= 0)[None, None].float()
    interior = (-torch.nn.functional.max_pool2d(-covered, 3, 1, 1)[0, 0] == 1).numpy()
    ours = out.images[0, 0].numpy()
    same = interior & (out.fragments.face_index[0].numpy() == ref_face)
    assert same.sum() > 200
    np.testing.assert_allclose(ours[same], shade[ref_face[same]], atol=1 / 255)


def test_pixel_normals_are_camera_space_normals_turned_to_the_camera():
    """Normals found from clip space equal the camera-space face normals, in every view, and
    two-sided shading turns those of faces seen from behind towards the camera."""
    vertices, faces = bumpy_sphere(1, seed=2)
    faces = faces[: len(faces) // 2]  # open: both sides of the surface are seen
    azimuth = torch.tensor([0.3, 1.9, 3.5, 5.0])
    cameras = cameras_from_angles(
        azimuth, torch.tensor([0.4, -0.3, 1.2, -1.0]), image_size=(40, 36)
    )
    shifted = cameras.projection.clone()  # off-centre frusta: not a diagonal map to (x, y, w)
    shifted[:, 0, 2] = torch.tensor([0.2, -0.1, 0.0, 0.15])
    shifted[:, 1, 2] = torch.tensor([-0.1, 0.1, 0.2, 0.0])
    cameras = dataclasses.replace(cameras, projection=shifted)
    fragments = rasterize(transform_vertices(vertices, cameras), faces, cameras.image_size)
    points = torch.cat([vertices, torch.ones(len(vertices), 1)], dim=1)
    camera = points @ cameras.world_to_camera[:, :3].mT  # [B, V, 3]
    rows = fragments.pixel_view[:, None] * len(vertices) + faces[fragments.pixel_face]
    v0, v1, v2 = camera.reshape(-1, 3)[rows].unbind(1)
    expected = torch.nn.functional.normalize(torch.linalg.cross(v1 - v0, v2 - v0), dim=1)
    one_sided = pixel_normals(fragments, cameras.projection, two_sided=False).t()  # [N, 3]
    assert torch.allclose(one_sided, expected, atol=1e-4)
    two_sided = pixel_normals(fragments, cameras.projection).t()
    away = (expected * v0).sum(1) > 0
    assert 0 < int(away.sum()) < len(away)  # both sides are on screen
    assert torch.allclose(two_sided[away], -expected[away], atol=1e-4)
    assert torch.allclose(two_sided[~away], expected[~away], atol=1e-4)
    assert bool(((two_sided * v0).sum(1) <= 0).all())


def test_lit_rendering_refuses_a_projection_that_is_not_perspective():
    vertices, faces, colors, cameras = tiny_scene(torch.float32)
    orthographic = torch.diag(torch.tensor([1.0, 1.0, -0.1, 1.0]))[None]
    flat = dataclasses.replace(cameras, projection=orthographic)
    with pytest.raises(ValueError, match="perspective"):
        Renderer().render(vertices, faces, flat, colors, lighting="sh")
    unlit = Renderer().render(vertices, faces, flat, colors, lighting="unlit")
    assert bool(unlit.alpha.any())  # unlit needs no normals


def test_passes_share_one_rasterization_and_transparent_background_is_premultiplied():
    vertices, faces = bumpy_sphere(1)
    colors = torch.stack([torch.full_like(vertices, 0.9), torch.full_like(vertices, 0.3)])
    cameras = cameras_from_angles(
        torch.tensor([0.0, 1.0, 2.0]), torch.zeros(3), image_size=(24, 32)
    )
    renderer = Renderer()
    out = renderer.render(vertices, faces, cameras, colors, background=None)
    assert out.images.shape == (2, 3, 3, 24, 32) and out.alpha.shape == (3, 1, 24, 32)
    single = renderer.render(vertices, faces, cameras, colors[1], background=None)
    assert torch.allclose(out.images[1], single.images, atol=1e-6)
    assert torch.all(out.images <= out.alpha + 1e-6)  # premultiplied
    white = renderer.render(vertices, faces, cameras, colors[1], background=(1.0, 1.0, 1.0))
    assert torch.allclose(white.images, single.images + (1 - single.alpha), atol=1e-6)
    assert ((out.alpha > 0) & (out.alpha < 1)).any()  # antialiased silhouettes


def test_face_neighbors_of_a_closed_mesh():
    _, faces = bumpy_sphere(1)
    neighbors = face_neighbors(faces)
    assert torch.all(neighbors >= 0)
    for face in range(0, len(faces), 7):
        for k in range(3):
            other = neighbors[face, k]
            edge = {int(faces[face, k]), int(faces[face, (k + 1) % 3])}
            assert edge <= set(faces[other].tolist()) and other != face


def test_mesh_edges_list_every_edge_once_with_its_faces_and_vertices():
    _, closed = bumpy_sphere(1)
    open_faces = closed[1:]  # one triangle removed: its three edges become boundaries
    for faces in (closed, open_faces):
        face, other, a, b, c = mesh_edges(faces)
        expected = {frozenset(map(int, (f[k], f[(k + 1) % 3]))) for f in faces for k in range(3)}
        listed = [frozenset((int(i), int(j))) for i, j in zip(a, b)]
        assert len(listed) == len(set(listed)) and set(listed) == expected
        # (a, b) follows the winding of `face`, c is its third vertex
        for i in range(0, len(face), 5):
            corners = faces[face[i]].tolist()
            k = corners.index(int(a[i]))
            assert corners[(k + 1) % 3] == int(b[i]) and corners[(k + 2) % 3] == int(c[i])
            if other[i] >= 0:  # the face across runs the edge the other way
                across = faces[other[i]].tolist()
                assert across[(across.index(int(b[i])) + 1) % 3] == int(a[i])
    assert int((mesh_edges(open_faces)[1] < 0).sum()) == 3


@pytest.mark.parametrize("inside_out", [False, True])
def test_back_face_culling_never_changes_the_picture(inside_out):
    # closed mesh seen from outside, from inside, and cut open by the near plane
    vertices, faces = bumpy_sphere(2)
    if inside_out:
        faces = faces.flip(1)
    assert is_closed_and_oriented(faces)
    assert not is_closed_and_oriented(faces[1:])  # a hole
    colors = torch.rand(len(vertices), 3, generator=torch.Generator().manual_seed(1))
    for radius in (2.5, 0.3, 1.05):  # outside, inside, near plane cutting the sphere
        cameras = cameras_from_angles(
            torch.tensor([0.3, 2.0]),
            torch.tensor([0.2, -0.4]),
            radius=radius,
            image_size=(40, 40),
            near=0.2,
        )
        culled = Renderer(cull_back_faces=True).render(vertices, faces, cameras, colors)
        drawn = Renderer(cull_back_faces=False).render(vertices, faces, cameras, colors)
        assert torch.equal(culled.fragments.face_index, drawn.fragments.face_index)
        assert torch.allclose(culled.images, drawn.images)
        assert (culled.fragments.face_index >= 0).float().mean() > 0.3


def test_world_space_orientation_matches_the_projected_triangles():
    # the Renderer finds orientations (and the faces it may cull) from world space; they must
    # be the orientation of the projected triangles, and unknown where a corner is behind
    vertices, faces = merge(bumpy_sphere(2), ground_plane())
    cameras = cameras_from_angles(
        torch.tensor([0.3, 2.0, 4.1]),
        torch.tensor([0.2, -0.4, 0.7]),
        radius=torch.tensor([2.5, 1.05, 3.0]),
        image_size=(40, 40),
        near=0.2,
    )
    clip = transform_vertices(vertices, cameras)
    projected = rasterize(clip, faces, cameras.image_size).face_orientation
    centers = camera_centers(cameras.world_to_camera)
    world, _ = face_orientation(vertices, faces, centers)
    given = rasterize(clip, faces, cameras.image_size, orientation=world).face_orientation
    assert torch.equal(given, projected)
    known = projected != 0
    assert known.float().mean() > 0.9 and (projected == -1).any() and (projected == 1).any()
    assert torch.equal(world[known], projected[known])
    # faces seen from inside: clockwise on screen for outward winding, the others if flipped
    sphere_vertices, sphere_faces = bumpy_sphere(2)
    for sign, winding in ((-1, sphere_faces), (1, sphere_faces.flip(1))):
        orientation, back = face_orientation(sphere_vertices, winding, centers)
        assert torch.equal(back, orientation == sign) and back.float().mean() > 0.3


def test_barycentrics_and_depth_keep_float32_precision_on_small_triangles():
    # 80k pixel-sized faces at 224x224; the reference is the same clip coordinates in float64
    # (the textbook (p_j x p_k) . q formula was 8e-4 off in relative depth here)
    vertices, faces = bumpy_sphere(6)
    cameras = cameras_from_angles(
        torch.tensor([0.4, 2.5]), torch.tensor([0.3, -0.2]), radius=2.6, image_size=(224, 224)
    )
    clip = transform_vertices(vertices, cameras)
    fragments = rasterize(clip, faces, cameras.image_size)
    exact = rasterize(clip.double(), faces, cameras.image_size)
    same = fragments.face_index == exact.face_index
    assert same.float().mean() > 0.999
    covered = same & (fragments.face_index >= 0)
    bary_error = (fragments.bary[covered].double() - exact.bary[covered]).abs().max()
    depth_error = ((fragments.depth[covered].double() / exact.depth[covered]) - 1).abs().max()
    assert bary_error < 1e-3 and depth_error < 2e-5


# ----------------------------------------------------------------------------- gradients


def tiny_scene(dtype=torch.float64):
    vertices = torch.tensor(
        [[-0.62, -0.5, 0.1], [0.58, -0.45, -0.2], [0.05, 0.61, 0.0], [0.7, 0.52, 0.3]],
        dtype=dtype,
    )
    faces = torch.tensor([[0, 1, 2], [1, 3, 2]])
    colors = torch.tensor(
        [[0.9, 0.1, 0.2], [0.2, 0.8, 0.3], [0.1, 0.3, 0.7], [0.5, 0.5, 0.1]], dtype=dtype
    )
    cameras = cameras_from_angles(
        torch.tensor([1.4], dtype=dtype), torch.tensor([0.15], dtype=dtype), image_size=(10, 12)
    )
    return vertices, faces, colors, cameras


@pytest.mark.parametrize("antialiased", [False, True])
def test_gradcheck_colors_and_positions(antialiased):
    vertices, faces, colors, cameras = tiny_scene()
    renderer = Renderer(antialias=antialiased)
    weights = torch.rand(
        1, 3, 10, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )

    def render(v, c):
        return (renderer.render(v, faces, cameras, c, lighting="sh").images * weights).sum(
            dim=(2, 3)
        )

    inputs = (vertices.clone().requires_grad_(True), colors.clone().requires_grad_(True))
    assert torch.autograd.gradcheck(render, inputs, eps=1e-6, atol=1e-5, rtol=1e-3)


def test_silhouette_gradient_matches_finite_differences():
    """The alpha sum is the triangle's area in pixels; its gradient must move the edges."""
    vertices = torch.tensor(
        [[-0.5, -0.4, 0.0], [0.6, -0.3, 0.0], [0.1, 0.55, 0.0]], dtype=torch.float64
    )
    faces = torch.tensor([[0, 1, 2]])
    cameras = front_camera((32, 32))
    renderer = Renderer()

    def coverage(v):
        out = renderer.render(
            v, faces, cameras, torch.full((3, 3), 0.5, dtype=v.dtype), lighting="unlit"
        )
        return out.alpha.sum()

    moved = vertices.clone().requires_grad_(True)
    coverage(moved).backward()
    step = 0.02  # about 0.3 pixels
    finite = torch.zeros(3, 2, dtype=torch.float64)
    for i in range(3):
        for j in range(2):
            plus, minus = vertices.clone(), vertices.clone()
            plus[i, j] += step
            minus[i, j] -= step
            finite[i, j] = (coverage(plus) - coverage(minus)) / (2 * step)
    grad = moved.grad[:, :2]
    assert torch.all(torch.sign(grad) == torch.sign(finite))
    assert torch.allclose(grad, finite, rtol=0.2, atol=2.0)
    pixels_per_unit = 16 / math.tan(math.radians(30)) / 2
    area = 0.5 * abs(1.1 * 0.95 - 0.6 * 0.1) * pixels_per_unit**2
    assert abs(coverage(vertices).item() - area) < 0.02 * area


def test_silhouette_of_a_fine_mesh_has_the_gradient_of_its_outline():
    """A scaled sphere made of sub-pixel faces: d(coverage)/d(scale) = 2 * area / scale."""
    mesh = trimesh.creation.icosphere(4)
    vertices = torch.tensor(mesh.vertices, dtype=torch.float32) * 0.5
    faces = torch.tensor(mesh.faces)
    cameras = front_camera((48, 48), radius=3.0)
    scale = torch.tensor(1.0, requires_grad=True)
    out = Renderer().render(
        vertices * scale,
        faces,
        cameras,
        torch.ones_like(vertices),
        lighting="unlit",
        background=None,
    )
    out.alpha.sum().backward()
    expected = 2 * out.alpha.sum().item()
    assert abs(scale.grad.item() - expected) < 0.1 * expected


# ----------------------------------------------------------------------------- fitting


def fitting_views(size=48, radius=2.6):
    azimuth = torch.tensor([0.3, 1.9, 3.5, 5.0, 1.0])
    elevation = torch.tensor([0.4, -0.3, 0.2, -0.1, 1.1])
    return cameras_from_angles(azimuth, elevation, image_size=(size, size), radius=radius)


def test_fitting_vertex_colors_from_views():
    vertices, faces = bumpy_sphere(2, seed=4)
    gen = torch.Generator().manual_seed(1)
    target_colors = torch.rand(len(vertices), 3, generator=gen)
    cameras = fitting_views()
    renderer = Renderer()
    with torch.no_grad():
        target = renderer.render(vertices, faces, cameras, target_colors).images
    colors = torch.full_like(target_colors, 0.5, requires_grad=True)
    optimizer = torch.optim.Adam([colors], lr=0.05)
    errors = []
    for _ in range(60):
        loss = ((renderer.render(vertices, faces, cameras, colors).images - target) ** 2).mean()
        errors.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    final = ((renderer.render(vertices, faces, cameras, colors).images - target) ** 2).mean()
    if final > 0.05 * errors[0]:
        dump(
            "fit_colors",
            target=target[0].numpy(),
            fitted=renderer.render(vertices, faces, cameras, colors).images[0].detach().numpy(),
        )
    assert final.item() <= 0.05 * errors[0]


def test_fitting_a_bump_with_displacements():
    mesh = trimesh.creation.icosphere(3)
    base = torch.tensor(mesh.vertices, dtype=torch.float32)
    faces = torch.tensor(mesh.faces)
    normals = base / base.norm(dim=1, keepdim=True)
    centre = torch.nn.functional.normalize(torch.tensor([0.6, 0.5, 0.62]), dim=0)
    true_bump = 0.25 * torch.exp(-((normals - centre) ** 2).sum(1) / (2 * 0.3**2))
    # smooth displacement fields, like the style field's: Gaussian bumps on 42 centres
    centres = torch.tensor(trimesh.creation.icosphere(1).vertices, dtype=torch.float32)
    basis = torch.exp(-((normals[:, None] - centres[None]) ** 2).sum(-1) / (2 * 0.35**2))
    cameras = cameras_from_angles(
        torch.linspace(0.3, 5.3, 5),
        torch.tensor([0.3, -0.2, 0.3, -0.2, 0.5]),
        image_size=(48, 48),
        radius=3.0,
    )
    renderer = Renderer()
    grey = torch.full_like(base, 0.7)
    with torch.no_grad():
        target = renderer.render(base + normals * true_bump[:, None], faces, cameras, grey).images
    weights = torch.zeros(len(centres), requires_grad=True)
    optimizer = torch.optim.Adam([weights], lr=0.05)
    for _ in range(60):
        displaced = base + normals * (basis @ weights)[:, None]
        loss = ((renderer.render(displaced, faces, cameras, grey).images - target) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    recovered = (basis @ weights).detach()
    error = (recovered - true_bump).norm() / true_bump.norm()  # 1.0 at the start
    assert error <= 0.5


# ----------------------------------------------------------------------------- devices & dtypes


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; none on this machine")
def test_cuda_matches_cpu():
    vertices, faces = bumpy_sphere(2, seed=5)
    colors = (vertices * 0.4 + 0.5).clamp(0, 1)
    cameras = fitting_views(size=40)
    results = {}
    for device in ("cpu", "cuda"):
        v = vertices.to(device).requires_grad_(True)
        c = colors.to(device).requires_grad_(True)
        out = Renderer().render(v, faces.to(device), cameras.to(device), c)
        out.images.square().sum().backward()
        results[device] = (
            out.images.cpu(),
            out.fragments.face_index.cpu(),
            v.grad.cpu(),
            c.grad.cpu(),
        )
    cpu, gpu = results["cpu"], results["cuda"]
    assert (cpu[1] == gpu[1]).float().mean() > 0.999
    assert (cpu[0] - gpu[0]).abs().max() < 1e-3 or (cpu[0] - gpu[0]).abs().mean() < 1e-4
    assert torch.allclose(cpu[3], gpu[3], rtol=1e-2, atol=1e-2)
    assert torch.allclose(cpu[2], gpu[2], rtol=5e-2, atol=1e-1)
    with torch.autocast("cuda"):
        out = Renderer().render(vertices.cuda(), faces.cuda(), cameras.to("cuda"), colors.cuda())
    assert out.images.dtype == torch.float32


def test_interpolate_and_antialias_compose_by_hand():
    vertices, faces = bumpy_sphere(1)
    cameras = fitting_views(size=24)
    clip = transform_vertices(vertices, cameras)
    fragments = rasterize(clip, faces, cameras.image_size)
    colors = interpolate(vertices.abs(), faces, fragments)
    assert colors.shape == (5, 24, 24, 3)
    assert torch.all(colors[~fragments.mask] == 0)
    smooth = antialias(colors, fragments)
    assert smooth.shape == colors.shape
    interior = fragments.mask.clone()
    assert torch.allclose(smooth[interior].mean(), colors[interior].mean(), atol=0.05)
    per_view = interpolate(vertices.abs().expand(5, -1, -1), faces, fragments)
    assert torch.allclose(per_view, colors)


def test_packed_values_are_channels_first_and_flat_shading_takes_the_visible_face():
    vertices, faces = bumpy_sphere(1)
    cameras = fitting_views(size=24)
    clip = transform_vertices(vertices, cameras)
    fragments = rasterize(clip, faces, cameras.image_size)
    assert torch.equal(fragments.clip_vertices, clip)  # the planes rasterize read, as [B, V, 4]
    face_values = torch.rand(len(faces), 2, generator=torch.Generator().manual_seed(1))
    flat = gather_face_values(face_values, fragments)  # [C, N]
    assert flat.shape == (2, fragments.pixel_index.numel())
    image = unpack(flat, fragments, fill=-1.0)  # [B, H, W, C]
    covered = fragments.mask
    assert torch.equal(image[covered], face_values[fragments.face_index[covered]])
    assert bool((image[~covered] == -1).all())
    per_view = face_values.expand(len(cameras), -1, -1).clone()
    per_view[1] += 1.0
    flat_per_view = gather_face_values(per_view, fragments)
    assert torch.allclose(flat_per_view - flat, (fragments.pixel_view == 1).float().expand(2, -1))
    smooth = interpolate_packed(vertices, faces, fragments)  # [3, N]: points on the faces
    assert smooth.shape == (3, fragments.pixel_index.numel())


def test_clip_vertices_in_any_layout_give_the_same_fragments():
    vertices, faces = bumpy_sphere(1)
    cameras = fitting_views(size=24)
    planar = transform_vertices(vertices, cameras)  # x, y, z, w planes underneath
    plain = planar.contiguous()  # [B, V, 4] rows, copied into planes by rasterize
    assert not plain.permute(2, 0, 1).is_contiguous()
    a = rasterize(planar, faces, cameras.image_size)
    b = rasterize(plain, faces, cameras.image_size)
    assert torch.equal(a.face_index, b.face_index)
    assert torch.equal(a.bary, b.bary)
    # gradients reach rows given in either layout alike
    grads = []
    for clip in (planar.detach().requires_grad_(True), plain.detach().requires_grad_(True)):
        fragments = rasterize(clip, faces, cameras.image_size)
        grads.append(torch.autograd.grad(fragments.pixel_depth.sum(), clip)[0])
    assert bool(grads[0][..., 3].abs().sum() > 0)
    assert torch.equal(grads[0], grads[1])


# ----------------------------------------------------------------------------- scale & threads


def uv_sphere(num_faces: int, radius: float = 0.8) -> tuple[torch.Tensor, torch.Tensor]:
    """A UV sphere with about ``num_faces`` triangles (outward, counter-clockwise faces)."""
    rings = max(4, int(math.sqrt(num_faces / 4)))
    segments = max(4, num_faces // (2 * rings))
    theta = torch.linspace(0.0, math.pi, rings + 1)
    phi = torch.arange(segments) * (2 * math.pi / segments)
    t, p = torch.meshgrid(theta, phi, indexing="ij")
    vertices = radius * torch.stack([t.sin() * p.cos(), t.cos(), t.sin() * p.sin()], -1)
    r = torch.arange(rings)[:, None]
    s = torch.arange(segments)[None]
    a, b = r * segments + s, r * segments + (s + 1) % segments
    c, d = a + segments, b + segments
    faces = torch.cat([torch.stack([a, b, c], -1), torch.stack([b, d, c], -1)]).reshape(-1, 3)
    return vertices.reshape(-1, 3), faces


def disc_area_pixels(radius: float, distance: float, size: int, fov_degrees: float = 60.0):
    """Area (pixels) of a sphere's outline seen from ``distance`` by a square camera."""
    angular = math.asin(radius / distance)
    projected = math.tan(angular) / math.tan(math.radians(fov_degrees) / 2) * size / 2
    return math.pi * projected**2


def test_a_million_faces_render_in_bounded_chunks():
    vertices, faces = uv_sphere(1_000_000)
    assert len(faces) >= 1_000_000
    cameras = front_camera((64, 64), radius=2.0)
    out = Renderer().render(
        vertices, faces, cameras, torch.full_like(vertices, 0.5), background=None
    )
    area = disc_area_pixels(0.8, 2.0, 64)
    assert abs(out.alpha.sum().item() - area) < 0.02 * area


def test_large_preview_image():
    vertices, faces = uv_sphere(20_000)
    cameras = front_camera((1024, 768), radius=2.0)  # not square: width 768
    out = Renderer().render(
        vertices, faces, cameras, torch.full_like(vertices, 0.5), background=(1.0, 1.0, 1.0)
    )
    assert out.images.shape == (1, 3, 1024, 768)
    projected = math.tan(math.asin(0.4)) / math.tan(math.radians(30)) * 512
    area = math.pi * projected**2  # square pixels: the outline is a circle
    assert abs(out.alpha.sum().item() - area) < 0.01 * area


def test_renderer_restores_the_callers_thread_count():
    vertices, faces = bumpy_sphere(1)
    vertices.requires_grad_(True)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        out = Renderer(threads=1).render(
            vertices, faces, front_camera((16, 16)), torch.full_like(vertices, 0.5)
        )
        assert torch.get_num_threads() == 2
        out.alpha.sum().backward()  # the colours get no gradient from alpha
        assert torch.get_num_threads() == 2
        out = Renderer(threads=1).render(
            vertices, faces, front_camera((16, 16)), torch.full_like(vertices, 0.5)
        )
        out.images.sum().backward()
        assert torch.get_num_threads() == 2 and vertices.grad.abs().sum() > 0
    finally:
        torch.set_num_threads(previous)
