"""Property tests: any mesh or file gives a valid PreparedMesh or a MeshError, never another exception."""

import numpy as np
import torch
import trimesh
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from text2mesh.config import MeshConfig
from text2mesh.errors import MeshError
from text2mesh.mesh import (
    SUPPORTED_SUFFIXES,
    Mesh,
    PreparedMesh,
    load_trimesh,
    prepare_mesh,
)

FAST = MeshConfig(max_edge=0.5, max_faces=200)
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

coordinates = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.floats(-10, 10),
    st.sampled_from([0.0, 1.0, -1.0, 1e-300, 1e300]),
)


def assert_valid(prepared: PreparedMesh) -> None:
    vertices, faces = prepared.mesh.vertices, prepared.mesh.faces
    assert vertices.dtype == torch.float32 and faces.dtype == torch.int64
    assert len(faces) > 0 and torch.isfinite(vertices).all()
    assert faces.min() >= 0 and faces.max() < len(vertices)
    assert vertices.norm(dim=1).max() <= 1 + 1e-4
    assert len(prepared.report) == 8
    if prepared.mesh.colors is not None:
        assert prepared.mesh.colors.shape == vertices.shape
        assert ((prepared.mesh.colors >= 0) & (prepared.mesh.colors <= 1)).all()


def prepare_or_mesh_error(source, cfg=FAST) -> None:
    try:
        prepared = prepare_mesh(source, cfg)
    except MeshError as error:
        assert "\n" not in str(error)
        return
    assert_valid(prepared)


@st.composite
def raw_meshes(draw):
    n_vertices = draw(st.integers(0, 12))
    vertices = draw(arrays(np.float64, (n_vertices, 3), elements=coordinates))
    n_faces = draw(st.integers(0, 16))
    faces = draw(arrays(np.int64, (n_faces, 3), elements=st.integers(-2, n_vertices + 1)))
    colors = draw(st.none() | arrays(np.float64, (n_vertices, 3), elements=coordinates))
    return vertices, faces, colors


@PROPERTY
@given(raw=raw_meshes(), clean=st.booleans(), up=st.sampled_from(["x", "-y", "z"]))
def test_random_meshes_prepare_or_raise_mesh_error(raw, clean, up):
    vertices, faces, colors = raw
    cfg = MeshConfig(clean=clean, up_axis=up, max_edge=0.5, max_faces=200)
    colors = None if colors is None else torch.tensor(colors)
    prepare_or_mesh_error(Mesh(torch.tensor(vertices), torch.tensor(faces), colors), cfg)


@PROPERTY
@given(
    noise=arrays(np.float64, (42, 3), elements=st.floats(-0.3, 0.3)),
    scale=st.sampled_from([1e-6, 1.0, 1e6]),
    drop=st.integers(0, 79),
)
def test_perturbed_spheres_stay_valid(noise, scale, drop):
    sphere = trimesh.creation.icosphere(1)
    vertices = (sphere.vertices + noise) * scale
    faces = np.delete(sphere.faces, drop, axis=0)  # a hole
    prepared = prepare_mesh(trimesh.Trimesh(vertices, faces, process=False), FAST)
    assert_valid(prepared)


@PROPERTY
@given(data=st.binary(max_size=400), suffix=st.sampled_from(sorted(SUPPORTED_SUFFIXES)))
def test_random_bytes_files_load_or_raise_mesh_error(tmp_path, data, suffix):
    path = tmp_path / f"random{suffix}"
    path.write_bytes(data)
    prepare_or_mesh_error(path)


OBJ_LINES = st.sampled_from(
    ["v 0 0 0", "v 1 0 0", "v 0 1 0", "v 0 0 1", "v nan 0 0", "v 1e400 0 0", "v 1 2", "vn 0 0 1", "vt 0 0",
     "f 1 2 3", "f 1 2 4", "f 2 3 4", "f 1 3 4", "f 1 2", "f 1 2 3 4", "f -1 -2 -3", "f 9 1 2", "f 1/1/1 2/2/2 3/3/3",
     "f 0 1 2", "o part", "g group", "usemtl missing", "mtllib missing.mtl", "# comment", "", "garbage"]
)


@PROPERTY
@given(lines=st.lists(OBJ_LINES, max_size=20))
def test_malformed_obj_text_loads_or_raises_mesh_error(tmp_path, lines):
    path = tmp_path / "model.obj"
    path.write_text("\n".join(lines) + "\n")
    prepare_or_mesh_error(path)


@PROPERTY
@given(n_vertices=st.integers(0, 5), n_faces=st.integers(0, 4), values=st.lists(st.sampled_from(["0", "1", "-1", "nan", "7", "x"]), max_size=40))
def test_malformed_off_and_ascii_ply_load_or_raise_mesh_error(tmp_path, n_vertices, n_faces, values):
    body = " ".join(values)
    off = tmp_path / "model.off"
    off.write_text(f"OFF\n{n_vertices} {n_faces} 0\n{body}\n")
    prepare_or_mesh_error(off)
    ply = tmp_path / "model.ply"
    ply.write_text(
        "ply\nformat ascii 1.0\n"
        f"element vertex {n_vertices}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element face {n_faces}\nproperty list uchar int vertex_indices\nend_header\n{body}\n"
    )
    prepare_or_mesh_error(ply)


def test_loader_never_leaks_other_exceptions_on_truncated_real_files(tmp_path):
    sphere = trimesh.creation.icosphere(1)
    for suffix in sorted(SUPPORTED_SUFFIXES):
        whole = tmp_path / f"whole{suffix}"
        sphere.export(whole)
        data = whole.read_bytes()
        for cut in (1, len(data) // 3, len(data) // 2, len(data) - 1):
            part = tmp_path / f"cut{suffix}"
            part.write_bytes(data[:cut])
            try:
                load_trimesh(part)
            except MeshError:
                pass
