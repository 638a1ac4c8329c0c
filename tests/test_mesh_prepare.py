"""Preparing: cleaning, orienting, normalizing with an exact inverse, subdividing, decimating."""

import logging

import numpy as np
import pytest
import torch
import trimesh

from text2mesh.config import MeshConfig
from text2mesh.errors import MeshError
from text2mesh.mesh import Mesh, PreparedMesh, Transform, prepare_mesh

RAW = MeshConfig(max_edge=None, max_faces=None)  # only clean, orient and normalize


def box(extents=(2.0, 4.0, 1.0), center=(10.0, -3.0, 5.0)) -> trimesh.Trimesh:
    mesh = trimesh.creation.box(extents=extents)
    mesh.apply_translation(center)
    return mesh


def longest_edge(prepared: PreparedMesh) -> float:
    v, f = prepared.mesh.vertices, prepared.mesh.faces
    return float((v[f] - v[f.roll(1, dims=1)]).norm(dim=-1).max())


def as_trimesh(prepared: PreparedMesh) -> trimesh.Trimesh:
    return trimesh.Trimesh(prepared.mesh.vertices.numpy(), prepared.mesh.faces.numpy(), process=False)


def test_normalizes_to_the_unit_sphere_and_maps_back_exactly():
    source = box()
    prepared = prepare_mesh(source, RAW)
    vertices = prepared.mesh.vertices
    assert vertices.dtype == torch.float32 and prepared.mesh.faces.dtype == torch.int64
    assert np.isclose(vertices.norm(dim=1).max().item(), 1.0, atol=1e-6)
    assert torch.allclose((vertices.min(0).values + vertices.max(0).values) / 2, torch.zeros(3), atol=1e-6)
    back = prepared.transform.to_input(vertices.double()).numpy()
    assert np.allclose(np.sort(back, axis=0), np.sort(source.vertices, axis=0), atol=1e-5)
    # a normalized length L is L / scale input units: the box's 4-long side
    height = (vertices[:, 1].max() - vertices[:, 1].min()).item()
    assert np.isclose(prepared.transform.lengths_to_input(height), 4.0, atol=1e-5)


def test_transform_inverse_is_exact_in_float64_and_survives_to_dict():
    transform = prepare_mesh(box(), MeshConfig(up_axis="z", rotate_degrees=[10, 20, 30], max_edge=None)).transform
    points = np.random.default_rng(0).normal(size=(50, 3)) * 100
    assert np.allclose(transform.to_input(transform.to_normalized(points)), points, rtol=0, atol=1e-10)
    restored = Transform.from_dict(transform.to_dict())
    assert restored == transform
    tensor = torch.tensor(points, dtype=torch.float32)
    assert torch.allclose(transform.to_normalized(tensor), torch.tensor(transform.to_normalized(points)).float(), atol=1e-5)
    homogeneous = np.c_[points, np.ones(50)] @ transform.matrix.T
    assert np.allclose(homogeneous[:, :3], transform.to_normalized(points))


def test_z_up_input_stands_on_y_with_blenders_front_towards_plus_z():
    # tall along z, with a nose sticking out towards -y (Blender's front)
    body = trimesh.creation.box(extents=[0.5, 0.5, 3.0])
    nose = trimesh.creation.box(extents=[0.1, 0.5, 0.1])
    nose.apply_translation([0, -0.4, 1.0])
    source = trimesh.util.concatenate([body, nose])
    vertices = prepare_mesh(source, MeshConfig(up_axis="z", max_edge=None)).mesh.vertices
    extent = vertices.max(0).values - vertices.min(0).values
    assert extent[1] == extent.max()  # tallest along y now
    front = vertices[vertices[:, 2] > vertices[:, 2].max() - 1e-6]
    height = (front[:, 1] - vertices[:, 1].min()) / extent[1]
    assert (height > 0.75).all()  # the frontmost points are the nose, high up: it points to +z


@pytest.mark.parametrize("axis", ["x", "-x", "y", "-y", "z", "-z"])
def test_every_up_axis_ends_up_pointing_to_plus_y(axis):
    # a cone whose apex is on +axis
    cone = trimesh.creation.cone(radius=0.3, height=2.0)  # apex on +z
    target = {"x": [1, 0, 0], "y": [0, 1, 0], "z": [0, 0, 1]}[axis.lstrip("-")]
    sign = -1.0 if axis.startswith("-") else 1.0
    cone.apply_transform(trimesh.geometry.align_vectors([0, 0, 1], sign * np.array(target, dtype=float)))
    prepared = prepare_mesh(cone, MeshConfig(up_axis=axis, max_edge=None))
    top = prepared.mesh.vertices[:, 1] > prepared.mesh.vertices[:, 1].max() - 1e-4
    assert top.sum() == 1  # the apex alone is on top
    y = prepared.mesh.vertices[:, 1]
    middle, height = float(y.max() + y.min()) / 2, float(y.max() - y.min())
    assert as_trimesh(prepared).center_mass[1] < middle - 0.2 * height  # the heavy base at the bottom


def test_rotate_degrees_turns_the_mesh():
    long_x = box(extents=(4.0, 1.0, 1.0), center=(0, 0, 0))
    vertices = prepare_mesh(long_x, MeshConfig(rotate_degrees=[0, 0, 90], max_edge=None)).mesh.vertices
    extent = vertices.max(0).values - vertices.min(0).values
    assert extent[1] > 3 * extent[0]


def test_clean_merges_drops_and_reports():
    sphere = trimesh.creation.icosphere(2)
    soup = sphere.vertices[sphere.faces].reshape(-1, 3)  # every face has its own 3 vertices
    faces = np.arange(len(soup)).reshape(-1, 3)
    nan_vertex = len(soup)
    lone_vertex = nan_vertex + 1
    vertices = np.vstack([soup, [[np.nan, 0, 0]], [[7, 7, 7]]])
    faces = np.vstack([faces, [[0, 1, nan_vertex]], faces[:3], [[0, 0, 1]], [[faces[5, 0], faces[5, 1], faces[5, 0]]]])
    assert lone_vertex == len(vertices) - 1
    source = trimesh.Trimesh(vertices, faces, process=False, validate=False)
    prepared = prepare_mesh(source, RAW)
    assert prepared.mesh.n_vertices == len(sphere.vertices)
    assert prepared.mesh.n_faces == len(sphere.faces)
    assert as_trimesh(prepared).is_watertight  # merged seams: normals are smooth
    line = prepared.report[1]
    assert line.startswith("clean:")
    assert "1 NaN/inf vertices" in line and "2 degenerate" in line and "3 duplicate faces" in line
    assert f"merged {len(soup) - len(sphere.vertices)} duplicate" in line


def test_cleaning_off_keeps_the_input_but_refuses_nan():
    sphere = trimesh.creation.icosphere(1)
    faces = np.vstack([sphere.faces, sphere.faces[:2]])
    prepared = prepare_mesh(trimesh.Trimesh(sphere.vertices, faces, process=False), MeshConfig(clean=False, max_edge=None))
    assert prepared.mesh.n_faces == len(faces) and prepared.report[1].startswith("clean: off")
    vertices = sphere.vertices.copy()
    vertices[0] = np.nan
    with pytest.raises(MeshError, match="mesh.clean"):
        prepare_mesh(trimesh.Trimesh(vertices, sphere.faces, process=False), MeshConfig(clean=False))


def test_long_edges_are_split_without_cracks_or_shape_change():
    source = box(extents=(1.0, 1.0, 1.0), center=(0, 0, 0))
    prepared = prepare_mesh(source, MeshConfig(max_edge=0.1, max_faces=None))
    assert longest_edge(prepared) <= 0.1 + 1e-6
    result = as_trimesh(prepared)
    assert result.is_watertight and result.is_winding_consistent
    assert np.isclose(result.volume, (2 / np.sqrt(3)) ** 3, rtol=1e-5)  # still the same cube
    assert prepared.report[5].startswith("subdivide: 12 -> ")


def test_subdivision_stays_within_the_face_budget():
    prepared = prepare_mesh(box(), MeshConfig(max_edge=0.01, max_faces=5000))
    assert 1000 < prepared.mesh.n_faces <= 5000
    assert "raised from 0.01" in prepared.report[5]


def test_meshes_above_the_face_budget_are_decimated_with_a_warning(caplog):
    sphere = trimesh.creation.icosphere(4)  # 5120 faces
    with caplog.at_level(logging.WARNING, logger="text2mesh.mesh.prepare"):
        prepared = prepare_mesh(sphere, MeshConfig(max_edge=None, max_faces=1000))
    assert 800 <= prepared.mesh.n_faces <= 1000
    assert any("max_faces" in record.getMessage() for record in caplog.records)
    assert prepared.report[4].startswith("decimate: 5120 -> ")
    result = as_trimesh(prepared)
    assert result.is_watertight
    assert prepared.mesh.vertices.norm(dim=1).max() <= 1 + 1e-5
    vertices = prepared.mesh.vertices
    radii = (vertices - (vertices.max(0).values + vertices.min(0).values) / 2).norm(dim=1)
    assert radii.min() > 0.95 * radii.max()  # still a sphere


def test_colours_follow_subdivision_and_decimation():
    sphere = trimesh.creation.icosphere(3)
    red = np.clip(sphere.vertices[:, 0:1], 0, 1)  # red grows along +x
    colors = np.hstack([red, np.zeros_like(red), 1 - red])
    source = Mesh(torch.tensor(sphere.vertices).float(), torch.tensor(sphere.faces), torch.tensor(colors).float())
    for cfg in (MeshConfig(max_edge=0.05), MeshConfig(max_edge=None, max_faces=300)):
        prepared = prepare_mesh(source, cfg)
        vertices, out = prepared.mesh.vertices, prepared.mesh.colors
        assert out is not None and out.shape == vertices.shape
        expected = vertices[:, 0].clamp(0, 1)
        assert (out[:, 0] - expected).abs().max() < 0.2
        assert torch.allclose(out[:, 0] + out[:, 2], torch.ones(len(out)), atol=1e-5)


def test_report_has_one_line_per_step():
    prepared = prepare_mesh(box(), MeshConfig())
    steps = [line.split(":")[0] for line in prepared.report]
    assert steps == ["load", "clean", "orient", "normalize", "decimate", "subdivide", "unit sphere", "colours"]
    assert prepared.source == "<Trimesh>"


def test_mesh_file_paths_are_prepared(tmp_path):
    path = tmp_path / "box.ply"
    box().export(path)
    prepared = prepare_mesh(str(path), MeshConfig(max_edge=0.5))
    assert prepared.source == str(path)
    assert prepared.report[0].startswith(f"load: {path}: 8 vertices, 12 faces")


@pytest.mark.parametrize(
    ("vertices", "faces", "message"),
    [
        (np.full((3, 3), np.nan), [[0, 1, 2]], "no faces with finite"),
        (np.ones((3, 3)), [[0, 1, 2]], "zero extent"),
        ([[0, 0, 0], [1, 0, 0], [2, 0, 0]], [[0, 1, 2]], "degenerate"),
        (np.eye(3), [[0, 1, 3]], "outside 0..2"),
        (np.eye(3), [[0, -1, 2]], "outside 0..2"),
        ([[0, 0, 0], [1e308, 0, 0], [-1e308, 1, 0]], [[0, 1, 2]], "beyond"),
        (np.eye(3), np.zeros((0, 3), dtype=int), "no faces"),
    ],
)
def test_unusable_geometry_raises_mesh_error(vertices, faces, message):
    mesh = Mesh(torch.tensor(np.asarray(vertices, dtype=np.float64)), torch.tensor(np.asarray(faces, dtype=np.int64)))
    with pytest.raises(MeshError, match=message):
        prepare_mesh(mesh)


def test_bad_options_raise_mesh_error():
    with pytest.raises(MeshError, match="up axis"):
        prepare_mesh(box(), MeshConfig(up_axis="w"))
    with pytest.raises(MeshError, match="three finite angles"):
        prepare_mesh(box(), MeshConfig(rotate_degrees=[1.0, 2.0]))
    with pytest.raises(MeshError, match="max_edge"):
        prepare_mesh(box(), MeshConfig(max_edge=-1.0))
    with pytest.raises(MeshError, match="cannot prepare"):
        prepare_mesh(42)


def test_stl_triangle_soup_is_merged_into_a_closed_mesh(tmp_path):
    path = tmp_path / "sphere.stl"
    sphere = trimesh.creation.icosphere(2)
    sphere.export(path)
    prepared = prepare_mesh(path, RAW)
    assert prepared.mesh.n_vertices == len(sphere.vertices)
    assert as_trimesh(prepared).is_watertight


def test_bad_limits_raise_before_loading(tmp_path):
    missing = tmp_path / "missing.obj"
    with pytest.raises(MeshError, match="max_faces"):
        prepare_mesh(missing, MeshConfig(max_faces=0))
    with pytest.raises(MeshError, match="three finite angles"):
        prepare_mesh(missing, MeshConfig(rotate_degrees=["a", 0, 0]))
