"""Mesh exports: every format opens in trimesh with the colours, size and shape we wrote."""

from __future__ import annotations

import numpy as np
import pygltflib
import pytest
import trimesh
from export_helpers import (
    glb_texture,
    nearest_input_vertex,
    sample_bilinear,
    srgb_from_linear,
)

from text2mesh.errors import ConfigError
from text2mesh.export import export_mesh
from text2mesh.export.files import atomic_path

ONE_STEP = 1.0 / 255.0 + 1e-6


@pytest.fixture(scope="module")
def colored_mesh():
    """A sphere moved out of the origin (an 'input frame') with smoothly varying colours."""
    sphere = trimesh.creation.icosphere(subdivisions=3)
    vertices = (sphere.vertices * [1.0, 2.0, 0.5] + [3.0, -1.0, 10.0]).astype(np.float32)
    colors = (0.5 + 0.5 * np.sin(sphere.vertices * [1.0, 1.5, 0.7] + 0.3)).astype(np.float32)
    return vertices, sphere.faces.astype(np.int64), colors


def with_extreme_colors(mesh):
    """The mesh with pure and near-black channels, which must survive vertex-colour formats."""
    vertices, faces, colors = mesh
    colors = colors.copy()
    colors[:3] = [[0.0, 0.002, 1.0], [1.0, 0.0, 0.0], [0.01, 0.01, 0.01]]
    return vertices, faces, colors


@pytest.mark.parametrize("fmt", ["obj", "ply"])
def test_obj_and_ply_round_trip_colors_count_and_bounds(tmp_path, colored_mesh, fmt):
    vertices, faces, colors = with_extreme_colors(colored_mesh)
    (written,) = export_mesh(vertices, faces, colors, tmp_path / f"out.{fmt}")
    loaded = trimesh.load(written, process=False, force="mesh")
    assert len(loaded.vertices) == len(vertices)
    assert len(loaded.faces) == len(faces)
    np.testing.assert_allclose(loaded.bounds, [vertices.min(0), vertices.max(0)], atol=1e-5)
    assert loaded.visual.kind == "vertex"
    np.testing.assert_allclose(loaded.visual.vertex_colors[:, :3] / 255.0, colors, atol=ONE_STEP)


def test_ply_is_binary(tmp_path, colored_mesh):
    (written,) = export_mesh(*colored_mesh, tmp_path / "out.ply")
    header = written.read_bytes()[:400].decode("ascii", errors="replace")
    assert "format binary_little_endian" in header
    assert "property uchar red" in header


def test_glb_is_valid_gltf_with_linear_vertex_colors(tmp_path, colored_mesh):
    vertices, faces, colors = with_extreme_colors(colored_mesh)
    (written,) = export_mesh(vertices, faces, colors, tmp_path / "out.glb")
    gltf = pygltflib.GLTF2().load(str(written))
    assert gltf.asset.version == "2.0"
    blob = gltf.binary_blob()
    for view in gltf.bufferViews:
        assert view.byteOffset % 4 == 0 and view.byteOffset + view.byteLength <= len(blob)
    primitive = gltf.meshes[0].primitives[0]
    position = gltf.accessors[primitive.attributes.POSITION]
    np.testing.assert_allclose(position.min, vertices.min(0), atol=1e-6)
    np.testing.assert_allclose(position.max, vertices.max(0), atol=1e-6)
    material = gltf.materials[primitive.material].pbrMetallicRoughness
    assert material.metallicFactor == 0.0  # glTF's default (1.0) renders vertex colours as dark metal

    scene = trimesh.load(written, process=False)
    (loaded,) = scene.geometry.values()
    assert len(loaded.vertices) == len(vertices) and len(loaded.faces) == len(faces)
    np.testing.assert_allclose(loaded.bounds, [vertices.min(0), vertices.max(0)], atol=1e-5)
    linear = np.asarray(loaded.visual.vertex_attributes["color"])[:, :3]
    np.testing.assert_allclose(srgb_from_linear(linear), colors, atol=ONE_STEP)


def testglb_texture_reproduces_vertex_colors_at_vertex_uvs(tmp_path, colored_mesh):
    vertices, faces, colors = colored_mesh
    (written,) = export_mesh(vertices, faces, colors, tmp_path / "tex.glb", texture=256)
    positions, _, uv, image, attributes = glb_texture(written)
    assert image.shape == (256, 256, 3)
    assert "COLOR_0" not in attributes  # glTF would multiply it with the texture
    source = nearest_input_vertex(positions, vertices)
    np.testing.assert_allclose(positions, vertices[source], atol=1e-6)
    sampled = sample_bilinear(image, uv)
    error = np.abs(sampled - colors[source])
    assert error.max() < 8 / 255, f"worst texel error {error.max() * 255:.1f}/255"
    assert error.mean() < 1.5 / 255


def test_textured_obj_writes_mtl_and_png_that_trimesh_applies(tmp_path, colored_mesh):
    vertices, faces, colors = colored_mesh
    written = export_mesh(vertices, faces, colors, tmp_path / "tex.obj", texture=128)
    assert [p.name for p in written] == ["tex.obj", "tex.mtl", "tex.png"]
    mtl = (tmp_path / "tex.mtl").read_text()
    assert "map_Kd tex.png" in mtl and "Kd 1.0" in mtl  # white diffuse: texture shown unmodified
    loaded = trimesh.load(tmp_path / "tex.obj", process=False, force="mesh")
    np.testing.assert_allclose(loaded.bounds, [vertices.min(0), vertices.max(0)], atol=1e-5)
    image = np.asarray(loaded.visual.material.image.convert("RGB"))
    uv = loaded.visual.uv * [1.0, -1.0] + [0.0, 1.0]  # OBJ (origin bottom-left) -> top-left
    source = nearest_input_vertex(np.asarray(loaded.vertices), vertices)
    error = np.abs(sample_bilinear(image, uv) - colors[source])
    assert error.max() < 12 / 255 and error.mean() < 2 / 255


def test_texture_from_color_fn_holds_detail_finer_than_vertices(tmp_path):
    """A style field sampled per texel keeps stripes that a coarse mesh's vertices cannot."""
    sphere = trimesh.creation.icosphere(subdivisions=1)
    vertices, faces = sphere.vertices.astype(np.float32), sphere.faces.astype(np.int64)

    def stripes(points):
        return np.repeat(0.5 + 0.5 * np.sin(12.0 * points[:, :1]), 3, axis=1)

    def color_fn(face_index, bary):
        return stripes(np.einsum("kc,kcd->kd", bary, vertices[faces[face_index]]))

    (written,) = export_mesh(vertices, faces, stripes(vertices), tmp_path / "f.glb", texture=512, color_fn=color_fn)
    (plain,) = export_mesh(vertices, faces, stripes(vertices), tmp_path / "v.glb", texture=512)
    positions, indices, uv, image, _ = glb_texture(written)
    _, _, uv_plain, image_plain, _ = glb_texture(plain)
    rng = np.random.default_rng(0)
    bary = rng.dirichlet([2.0, 2.0, 2.0], size=len(indices)).astype(np.float32)
    points = np.einsum("kc,kcd->kd", bary, positions[indices])
    truth = stripes(points)
    field_error = np.abs(sample_bilinear(image, np.einsum("kc,kcd->kd", bary, uv[indices])) - truth).mean()
    vertex_error = np.abs(sample_bilinear(image_plain, np.einsum("kc,kcd->kd", bary, uv_plain[indices])) - truth).mean()
    assert field_error < 0.03
    assert vertex_error > 3 * field_error


def test_unknown_format_and_textured_ply_are_user_errors(tmp_path, colored_mesh):
    with pytest.raises(ConfigError, match="unknown mesh format"):
        export_mesh(*colored_mesh, tmp_path / "out.stl")
    with pytest.raises(ConfigError, match="PLY cannot carry a texture"):
        export_mesh(*colored_mesh, tmp_path / "out.ply", texture=64)


def test_interrupted_write_keeps_previous_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "mesh.ply"
    target.write_bytes(b"previous")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_bytes(b"half a fi")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mesh.ply"]


def test_export_creates_missing_folders(tmp_path, colored_mesh):
    (written,) = export_mesh(*colored_mesh, tmp_path / "a" / "b" / "out.glb")
    assert written.is_file()
