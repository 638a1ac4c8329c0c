"""Mesh dataclass and normals: shapes are checked, normals point outwards and are differentiable."""

import pytest
import torch
import trimesh

from text2mesh.mesh import Mesh, face_areas, face_normals, vertex_normals


def icosphere(subdivisions: int = 2, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions)
    return torch.tensor(sphere.vertices, dtype=dtype), torch.tensor(sphere.faces, dtype=torch.int64)


def test_vertex_normals_of_a_sphere_point_outwards():
    vertices, faces = icosphere()
    normals = vertex_normals(vertices, faces)
    assert normals.shape == vertices.shape and normals.dtype == torch.float32
    assert torch.allclose(normals.norm(dim=1), torch.ones(len(vertices)), atol=1e-5)
    assert torch.nn.functional.cosine_similarity(normals, vertices).min() > 0.99


def test_vertex_normals_are_area_weighted():
    # two triangles sharing vertex 0: a big one in the xy plane, a small one in the xz plane
    vertices = torch.tensor([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, -1], [1, 0, 0]], dtype=torch.float32)
    faces = torch.tensor([[0, 1, 2], [0, 4, 3]])
    normal = vertex_normals(vertices, faces)[0]
    big, small = face_normals(vertices, faces)
    assert torch.allclose(big, torch.tensor([0.0, 0.0, 1.0]))
    assert torch.allclose(small, torch.tensor([0.0, 1.0, 0.0]))
    assert normal[2] > 0.99 and 0 < normal[1] < 0.02  # 100:1 area ratio


def test_normals_of_degenerate_and_unused_vertices_are_zero_not_nan():
    vertices = torch.tensor([[0, 0, 0], [1, 0, 0], [2, 0, 0], [5, 5, 5]], dtype=torch.float32)
    faces = torch.tensor([[0, 1, 2]])
    assert torch.equal(face_normals(vertices, faces), torch.zeros(1, 3))
    assert torch.equal(vertex_normals(vertices, faces), torch.zeros(4, 3))
    assert face_areas(vertices, faces).item() == 0.0


def test_vertex_normals_are_differentiable():
    vertices, faces = icosphere(1, dtype=torch.float64)
    vertices = (vertices + 0.05 * torch.randn(vertices.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    vertices.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: vertex_normals(v, faces), (vertices,))


def test_mesh_checks_shapes_and_dtypes():
    vertices, faces = icosphere(0)
    mesh = Mesh(vertices, faces)
    assert mesh.n_vertices == 12 and mesh.n_faces == 20 and mesh.colors is None
    assert torch.allclose(mesh.normals(), vertex_normals(vertices, faces))
    with pytest.raises(ValueError, match="vertices"):
        Mesh(vertices[:, :2], faces)
    with pytest.raises(ValueError, match="int64"):
        Mesh(vertices, faces.int())
    with pytest.raises(ValueError, match="colors"):
        Mesh(vertices, faces, colors=torch.zeros(3, 3))


def test_mesh_to_casts_floats_and_keeps_faces_int64():
    vertices, faces = icosphere(0)
    mesh = Mesh(vertices, faces, colors=torch.rand(12, 3)).to(dtype=torch.float64)
    assert mesh.vertices.dtype == torch.float64 and mesh.colors.dtype == torch.float64
    assert mesh.faces.dtype == torch.int64
